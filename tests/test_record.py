"""Alert clips end to end: pipelines/alerts-record-clips.pipeline on vtest.avi with yolox_nano.
Every alert names a clip, every clip named is a finished MP4 (GstDiscoverer reads its H.264
stream and duration), and each lasts from the pre-capture before its first alert to the
post-capture after its last one, within one GOP."""
import json
import subprocess

from conftest import REPO, SHARED, discover, gst_env

PRE, POST, GOP_S = 3, 3, 2.0  # GOP=20 frames at vtest's 10 fps
VIDEO_S = 79.5



def test_every_alert_names_a_finished_clip_around_it(tmp_path):
    clips_dir = tmp_path / "clips"
    env = {**gst_env(), "RT_SHARED": str(SHARED)}
    r = subprocess.run([str(REPO / "pipelines/run.sh"), "alerts-record-clips", f"CLIPS={clips_dir}",
                        f"PRE={PRE}", f"POST={POST}", "MAX_S=300"],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    alerts = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert len(alerts) >= 3, r.stdout[-2000:]
    assert all("clip" in a for a in alerts), [a for a in alerts if "clip" not in a]

    by_clip = {}
    for a in alerts:
        by_clip.setdefault(a["clip"], []).append(a["stream_time"])
    files = sorted(str(p) for p in clips_dir.iterdir())
    assert files == sorted(by_clip), "exactly the clips the alerts name, none left .part"

    found = discover(files)
    for path, times in by_clip.items():
        info = found[path]
        assert info["caps"] and info["caps"].startswith("video/x-h264"), info
        start = max(min(times) - PRE, 0.0)
        end = min(max(times) + POST, VIDEO_S)
        # The clip starts at the keyframe at or before its start: up to one GOP earlier.
        assert end - start - 0.2 <= info["duration"] <= end - start + GOP_S + 0.2, (path, times, info)
