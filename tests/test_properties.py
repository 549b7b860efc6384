"""gst-inspect-1.0 is the reference manual: what it says of each property must be true."""
import subprocess

from conftest import REPO, gst_env


def test_every_documented_default_is_the_value_of_a_new_element():
    r = subprocess.run(["/usr/bin/python3", str(REPO / "tests/property_defaults.py")],
                       env=gst_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    checked = int(r.stdout.split()[0])
    assert checked >= 80, r.stdout  # every element was found
