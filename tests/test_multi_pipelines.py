"""The many-source descriptions run for real: pipelines/multi-4-sources.pipeline (2 files and
2 RTSP streams, over UDP and TCP, from a real RTSP server) and pipelines/multi-mosaic.pipeline
(the compositor mosaic), stopped with Ctrl-C as a user would."""
import json
import signal
import subprocess
import time

import cv2

from conftest import REPO, SHARED, VTEST, gst_env

MEGAMIND = VTEST.parent / "Megamind.avi"


def run_for(name, seconds, until=None, **vars):
    """Runs pipelines/NAME.pipeline, then interrupts it (EOS, as gst-launch -e does on
    Ctrl-C) after `seconds`, or as soon as `until()` holds."""
    env = {**gst_env(), "RT_SHARED": str(SHARED)}
    proc = subprocess.Popen([str(REPO / "pipelines/run.sh"), name,
                             *(f"{k}={v}" for k, v in vars.items())],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None and not (until and until()):
        time.sleep(0.5)
    assert proc.poll() is None, f"ended early: {proc.stderr.read()[-3000:]}"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "ERROR" not in err, err[-3000:]
    return out


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_four_mixed_sources_through_one_rtinfer(rtsp, tmp_path):
    out = tmp_path / "dets"
    files = [tmp_path / f"dets-{i}.jsonl" for i in range(4)]
    run_for("multi-4-sources", 90, until=lambda: all(len(lines(f)) >= 30 for f in files),
            OUT=out, VIDEO0=VTEST, VIDEO1=MEGAMIND,
            URI2=f"rtsp://127.0.0.1:{rtsp}/test", URI3=f"rtspt://127.0.0.1:{rtsp}/test")
    sizes = {0: (768, 576), 1: (720, 528), 2: (384, 288), 3: (384, 288)}
    for i, f in enumerate(files):
        frames = lines(f)
        assert len(frames) >= 30, f"source {i}: {len(frames)} frames"
        assert {d["source_id"] for d in frames} == {i}
        assert {(d["width"], d["height"]) for d in frames} == {sizes[i]}
        if i != 1:  # vtest.avi, directly or over RTSP: pedestrians throughout
            people = [d for d in frames if any(o["label"] == "person" for o in d["objects"])]
            assert len(people) >= 0.9 * len(frames), f"source {i}"


def tiles(path):
    """Which of the mosaic's four 640x480 tiles (row by row) hold a picture, not black."""
    img = cv2.imread(str(path))
    if img is None or img.shape[:2] != (960, 1280):
        return None
    return tuple(img[y:y + 480, x:x + 640].std() > 10 for y in (0, 480) for x in (0, 640))


def test_mosaic_of_four_sources(rtsp, tmp_path):
    """The mosaic shows all four sources and keeps showing them: once the first frame with
    every tile arrives (sources start at different times), the next 6 seconds of frames
    before the stop must keep each tile filled."""
    shots = lambda: sorted(tmp_path.glob("m-*.jpg"))  # noqa: E731
    seen = {"checked": 0}  # frames looked at; then the first complete one and when it came

    def steady():
        files = shots()[:-1]  # the newest may still be being written
        while "first" not in seen and seen["checked"] < len(files):
            if tiles(files[seen["checked"]]) == (True,) * 4:
                seen["first"], seen["at"] = seen["checked"], time.time()
            seen["checked"] += 1
        if "first" in seen and time.time() - seen["at"] > 6:
            seen["end"] = len(files)
            return True
        return False

    # 5 snapshots a second: encoding all 24 a second of 1280x960 to JPEG would take a core of
    # the 2 that the pipeline itself needs.
    run_for("multi-mosaic", 90, until=steady, VIDEO0=VTEST, VIDEO1=MEGAMIND,
            URI3=f"rtsp://127.0.0.1:{rtsp}/test",
            SINK="videorate drop-only=true ! video/x-raw,framerate=5/1 ! jpegenc "
                 f"! multifilesink location={tmp_path}/m-%05d.jpg")
    assert "end" in seen, "no frame showed all four sources within 90 s"
    frames = [tiles(f) for f in shots()[seen["first"]:seen["end"]]]
    assert len(frames) >= 25, len(frames)  # about 6 s at 5 a second
    for t in range(4):
        shown = sum(1 for f in frames if f and f[t])
        assert shown >= 0.95 * len(frames), f"tile {t} filled in {shown} of {len(frames)} frames"
