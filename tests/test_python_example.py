"""The PyGObject example reads RtDetectionMeta with no project code."""
import subprocess

from conftest import REPO, VTEST, YOLOX, gst_env


def test_python_example_prints_detections():
    r = subprocess.run(["/usr/bin/python3", str(REPO / "examples/python/print_detections.py"),
                        str(VTEST), str(YOLOX), "20"],
                       env=gst_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "20 of 20 frames carried RtDetectionMeta"
    assert lines[0].startswith("frame 0: ") and "person" in lines[0]
