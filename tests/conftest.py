"""Shared fixtures: where the shared folder, the plugins and the test media are."""
import json
import os
import pathlib
import shlex
import socket
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


DISCOVER = """
import json, sys, gi
gi.require_version("Gst", "1.0"); gi.require_version("GstPbutils", "1.0")
from gi.repository import Gst, GstPbutils
Gst.init(None)
out = {}
for path in sys.argv[1:]:
    info = GstPbutils.Discoverer.new(10 * Gst.SECOND).discover_uri(Gst.filename_to_uri(path))
    video = info.get_video_streams()
    out[path] = {"duration": info.get_duration() / Gst.SECOND,
                 "caps": video[0].get_caps().to_string() if video else None}
print(json.dumps(out))
"""


def discover(paths):
    """GstDiscoverer on media files (PyGObject): {path: {"duration": s, "caps": video caps}}."""
    r = subprocess.run(["/usr/bin/python3", "-c", DISCOVER, *map(str, paths)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


@pytest.fixture(scope="session", autouse=True)
def built_plugins():
    assert (PLUGINS / "libgstrtinfer.so").exists(), "build first: cargo build --release"
    assert YOLOX.exists(), f"{YOLOX} missing: set RT_SHARED to the shared folder"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def rtsp():
    """A real RTSP server (tests/servers/rtsp_server.py) serving vtest.avi on loopback: its
    port; the stream is rtsp://127.0.0.1:PORT/test."""
    port = free_port()
    proc = subprocess.Popen(["/usr/bin/python3", str(REPO / "tests/servers/rtsp_server.py"),
                             str(port), str(VTEST)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield port
    proc.kill()
    proc.wait()
