"""rtoverlay in real pipelines: vtest.avi detected, tracked, drawn and written to MP4."""
import subprocess

import numpy as np

from conftest import REPO, SHARED, VTEST, gst_env

W, H = 768, 576


def decode(path, frames):
    """The first `frames` frames of a video file as RGB arrays."""
    r = subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!", "decodebin",
                        "!", "videoconvert", "!", "video/x-raw,format=RGB", "!", "fdsink", "fd=1"],
                       capture_output=True, timeout=120, check=True)
    data = np.frombuffer(r.stdout, np.uint8)
    n = min(frames, len(data) // (W * H * 3))
    return data[: n * W * H * 3].reshape(n, H, W, 3)


def test_tracks_drawn_into_an_mp4(tmp_path):
    out = tmp_path / "tracks.mp4"
    env = {**gst_env(), "RT_SHARED": str(SHARED)}
    r = subprocess.run([str(REPO / "pipelines/run.sh"), "track-overlay-mp4", f"VIDEO={VTEST}",
                        "FRAMES=40", f"OUT={out}"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    drawn = decode(out, 40)
    assert len(drawn) >= 35, f"{len(drawn)} frames in the MP4"
    original = decode(VTEST, 40)
    # Frame 30: the people of vtest are outlined in strong palette colours; H.264 noise alone
    # changes pixels by far less than the overlay does.
    diff = np.abs(drawn[30].astype(int) - original[30].astype(int)).max(axis=2)
    changed = diff > 80
    assert changed.sum() > 2000, f"{changed.sum()} pixels changed by the overlay"
    # ...and only around the detections, never everywhere: most of the frame is untouched.
    assert changed.mean() < 0.2, changed.mean()


def test_tracks_drawn_into_live_hls(tmp_path):
    hls = tmp_path / "hls"
    hls.mkdir()
    env = {**gst_env(), "RT_SHARED": str(SHARED)}
    r = subprocess.run([str(REPO / "pipelines/run.sh"), "track-overlay-hls", f"VIDEO={VTEST}",
                        "FRAMES=100", f"DIR={hls}"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    playlist = (hls / "index.m3u8").read_text()
    listed = [x for x in playlist.splitlines() if x.endswith(".ts")]
    # 100 frames at 10 fps in segments of about 2 s: the playlist lists its 5 (playlist-length),
    # each still on disk, and ends.
    assert len(listed) == 5 and all((hls / x).exists() for x in listed), playlist
    assert "#EXT-X-ENDLIST" in playlist
    drawn = decode(hls / listed[0], 20)
    original = decode(VTEST, 20)
    assert len(drawn) == 20
    diff = np.abs(drawn[10].astype(int) - original[10].astype(int)).max(axis=2)
    assert (diff > 80).sum() > 1000, "no boxes drawn in the HLS segment"
