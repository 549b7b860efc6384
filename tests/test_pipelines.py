"""Every description in pipelines/ parses with the elements it names, and the ones that
need no camera or display run to the end."""
import json
import os
import subprocess

import pytest

from conftest import REPO, SHARED, gst_env

PIPELINES = sorted(p.stem for p in (REPO / "pipelines").glob("*.pipeline"))

PARSE = """
import sys, gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
Gst.parse_launch(sys.argv[1])
"""


def expand(name, **env):
    e = {**gst_env(), "RT_SHARED": str(SHARED), **env}
    r = subprocess.run([str(REPO / "pipelines/expand.sh"), str(REPO / f"pipelines/{name}.pipeline")],
                       env=e, capture_output=True, text=True, check=True)
    return r.stdout.strip()


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_parses(name):
    line = expand(name)
    assert "${" not in line and "$RT_SHARED" not in line, line
    r = subprocess.run(["/usr/bin/python3", "-c", PARSE, line], env=gst_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{line}\n{r.stderr}"


def test_testsrc_pipeline_runs():
    env = {**gst_env(), "RT_SHARED": str(SHARED)}
    r = subprocess.run([str(REPO / "pipelines/run.sh"), "detect-testsrc", "FRAMES=5"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [d["frame"] for d in lines] == list(range(5))
