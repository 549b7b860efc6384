"""The whole of vtest.avi through the pipeline: every frame gets detections, and the frames
agree with the reference detector (../shared/tools/reference_detect.py).

Two pipelines run: the defaults (on a CPU that computes bf16, OpenVINO in bf16; elsewhere ONNX
Runtime in f32) and `precision=f32` (ONNX Runtime, exact). The reference decodes and resizes
with OpenCV, the pipeline with GStreamer and rtpreprocess, so even f32 differs on a few frames
by more than the shared tolerance (detections near the threshold); bf16 adds a few more."""
import json

import cv2
import pytest

from conftest import VTEST, YOLOX, gst_launch
from matching import compare

FRAMES = 795
SAMPLE = range(0, FRAMES, 40)


def run_pipeline(tmp_path_factory, settings):
    out = tmp_path_factory.mktemp("vtest") / "dets.jsonl"
    r = gst_launch(f"filesrc location={VTEST} ! decodebin ! videoconvert ! rtpreprocess ! "
                   f"rtinfer model-file={YOLOX} {settings} ! rtjsonenc ! filesink location={out}")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.fixture(scope="module")
def pipeline_output(tmp_path_factory):
    return run_pipeline(tmp_path_factory, "")


@pytest.fixture(scope="module")
def exact_output(tmp_path_factory):
    return run_pipeline(tmp_path_factory, "precision=f32")


@pytest.fixture(scope="module")
def reference():
    """The reference detector's objects for every frame of vtest.avi."""
    import reference_detect as ref

    model = ref.Model(str(YOLOX), "auto", threads=2)
    cap = cv2.VideoCapture(str(VTEST))
    frames = []
    for index in range(FRAMES):
        ok, frame = cap.read()
        assert ok, f"OpenCV could not read frame {index}"
        frames.append(ref.detect(frame, model))
    return frames


def test_every_frame_gets_detections(pipeline_output):
    assert [d["frame"] for d in pipeline_output] == list(range(FRAMES))
    assert all(d["width"] == 768 and d["height"] == 576 for d in pipeline_output)
    assert all(not d["stale"] for d in pipeline_output)
    # Pedestrians all the way through.
    assert sum(1 for d in pipeline_output
               if any(o["label"] == "person" for o in d["objects"])) > FRAMES * 0.9


def test_sampled_frames_match_the_reference_in_f32(exact_output, reference):
    failures = {i: p for i in SAMPLE if (p := compare(reference[i], exact_output[i]["objects"]))}
    assert not failures, json.dumps(failures, indent=1)


@pytest.mark.parametrize("which", ["defaults", "f32"])
def test_nearly_every_frame_matches_the_reference(which, pipeline_output, exact_output,
                                                  reference):
    # Measured on the development machine: 19 of 795 frames (2.4 %) outside the tolerance in
    # f32, 25 (3.1 %) in bf16; a backend or precision that goes wrong misses far more.
    output = pipeline_output if which == "defaults" else exact_output
    failures = {i: p for i in range(FRAMES)
                if (p := compare(reference[i], output[i]["objects"]))}
    assert len(failures) <= FRAMES * 0.05, json.dumps(failures, indent=1)
