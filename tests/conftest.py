"""Shared fixtures: where the shared folder, the plugins and the test media are."""
import os
import pathlib
import shlex
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("RT_SHARED", REPO.parent / "shared")).resolve()
PLUGINS = REPO / "target" / "release"
VTEST = pathlib.Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
YOLOX = SHARED / "models" / "yolox_nano.onnx"

sys.path.insert(0, str(SHARED / "tools"))


def gst_env():
    env = dict(os.environ)
    env["GST_PLUGIN_PATH"] = str(PLUGINS)
    return env


def gst_launch(line, timeout=600):
    """Runs a gst-launch-1.0 line with our plugins; returns the completed process."""
    return subprocess.run(["gst-launch-1.0", "-q", *shlex.split(line)], env=gst_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session", autouse=True)
def built_plugins():
    assert (PLUGINS / "libgstrtinfer.so").exists(), "build first: cargo build --release"
    assert YOLOX.exists(), f"{YOLOX} missing: set RT_SHARED to the shared folder"
