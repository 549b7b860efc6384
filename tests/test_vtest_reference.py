"""The whole of vtest.avi through the pipeline: every frame gets detections, and a sample
of frames agrees with the reference detector (../shared/tools/reference_detect.py)."""
import json

import cv2
import pytest

from conftest import VTEST, YOLOX, gst_launch
from matching import compare

FRAMES = 795
SAMPLE = range(0, FRAMES, 40)


@pytest.fixture(scope="module")
def pipeline_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("vtest") / "dets.jsonl"
    r = gst_launch(f"filesrc location={VTEST} ! decodebin ! videoconvert ! rtpreprocess ! "
                   f"rtinfer model-file={YOLOX} ! rtjsonenc ! filesink location={out}")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_every_frame_gets_detections(pipeline_output):
    assert [d["frame"] for d in pipeline_output] == list(range(FRAMES))
    assert all(d["width"] == 768 and d["height"] == 576 for d in pipeline_output)
    assert all(not d["stale"] for d in pipeline_output)
    # Pedestrians all the way through.
    assert sum(1 for d in pipeline_output
               if any(o["label"] == "person" for o in d["objects"])) > FRAMES * 0.9


def test_sampled_frames_match_the_reference(pipeline_output):
    import reference_detect as ref

    model = ref.Model(str(YOLOX), "auto", threads=2)
    cap = cv2.VideoCapture(str(VTEST))
    failures = {}
    for index in range(FRAMES):
        ok, frame = cap.read()
        assert ok, f"OpenCV could not read frame {index}"
        if index not in SAMPLE:
            continue
        expected = ref.detect(frame, model)
        problems = compare(expected, pipeline_output[index]["objects"])
        if problems:
            failures[index] = problems
    assert not failures, json.dumps(failures, indent=1)
