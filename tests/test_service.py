"""rtanalytics, the service: config checks, the HTTP API, a real Prometheus scraping it,
clean stops, failing sources, tokens, masked credentials, JSON logs and sharding."""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import REPO, SHARED, VTEST, YOLOX, discover, free_port

BIN = REPO / "target" / "release" / "rtanalytics"
MEGAMIND = VTEST.parent / "Megamind.avi"
EXAMPLES = REPO / "rtanalytics" / "examples"
# The documented bound for a clean stop: the stop timeout (10 s by default) plus shutdown.
STOP_BOUND_S = 15


def env():
    return {**os.environ, "RT_SHARED": str(SHARED), "GST_PLUGIN_PATH": str(BIN.parent)}


def http(method, url, body=None, token=None):
    """(status, parsed JSON or text) of one request."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def wait_for(what, seconds=60, step=0.25):
    deadline = time.time() + seconds
    while time.time() < deadline:
        v = what()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


class Service:
    """rtanalytics run with a config written to tmp_path; stops it with SIGTERM."""

    def __init__(self, tmp_path, config, *args, extra_env=None, name="service"):
        listen = config.setdefault("http", {}).setdefault("listen", f"127.0.0.1:{free_port()}")
        self.port = int(listen.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(json.dumps(config))
        self.out = open(tmp_path / f"{name}.out", "w+")
        self.err = open(tmp_path / f"{name}.err", "w+")
        self.proc = subprocess.Popen([str(BIN), "run", "--config", str(cfg), *args],
                                     env={**env(), **(extra_env or {})},
                                     stdout=self.out, stderr=self.err)

    def get(self, path, **kw):
        return http("GET", self.url + path, **kw)

    def wait_up(self):
        def up():
            assert self.proc.poll() is None, self.stderr()
            try:
                return self.get("/healthz")[0] == 200
            except OSError:
                return False
        wait_for(up, 60)
        return self

    def stderr(self):
        self.err.flush()
        return open(self.err.name).read()

    def stdout_lines(self):
        self.out.flush()
        return [json.loads(x) for x in open(self.out.name).read().splitlines() if x.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        return self.proc.returncode

    def frames(self, sid):
        status, body = self.get(f"/api/v1/streams/{sid}")
        return body["frames"] if status == 200 else -1


@pytest.fixture
def services():
    started = []
    yield lambda *a, **k: started.append(Service(*a, **k)) or started[-1]
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def config(*sources, **extra):
    c = {"model": {"file": str(YOLOX)}, "sources": list(sources)}
    c.update(extra)
    return c


def src(sid, uri, **extra):
    return {"id": sid, "uri": uri, **extra}


# --- checking configs -------------------------------------------------------------------

def check(path):
    return subprocess.run([str(BIN), "check", str(path)], env=env(), capture_output=True,
                          text=True, timeout=60)


def test_example_config_checks(tmp_path):
    r = check(EXAMPLES / "cameras.yaml")
    assert r.returncode == 0, r.stderr
    assert "2 sources" in r.stdout


def test_check_names_file_line_and_key(tmp_path):
    bad = tmp_path / "cameras.yaml"
    bad.write_text(f"model:\n  file: {YOLOX}\nsources:\n  - id: a\n    uri: file:///x\n"
                   "    url: file:///y\n")
    r = check(bad)
    assert r.returncode == 2
    assert str(bad) in r.stderr and "line 6" in r.stderr and "url" in r.stderr, r.stderr

    bad.write_text(f"model:\n  file: {YOLOX}\n  interval: 0\n")
    r = check(bad)
    assert r.returncode == 2 and "model.interval" in r.stderr, r.stderr

    bad.write_text("model:\n  file: nosuch.onnx\n")
    r = check(bad)
    assert r.returncode == 2 and "model.file" in r.stderr and "nosuch.onnx" in r.stderr, r.stderr

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: x\n    clases: [person]\n")
    bad.write_text(f"model:\n  file: {YOLOX}\nrules: rules.yaml\n")
    r = check(bad)
    assert r.returncode == 2 and "rules" in r.stderr and "clases" in r.stderr, r.stderr


def test_published_schema_matches_and_validates_the_example():
    jsonschema = pytest.importorskip("jsonschema")
    yaml = pytest.importorskip("yaml")
    schema = json.loads((REPO / "rtanalytics" / "config.schema.json").read_text())
    out = subprocess.run([str(BIN), "schema"], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == schema, "config.schema.json is stale: regenerate it"
    example = yaml.safe_load((EXAMPLES / "cameras.yaml").read_text())
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**example, "sourcez": []}, schema)


# --- running ----------------------------------------------------------------------------

def test_api_sources_alerts_and_clean_stop(services, tmp_path):
    stats_file = tmp_path / "stats.json"
    s = services(tmp_path, config(src("street", f"file://{VTEST}"),
                                  src("lobby", f"file://{MEGAMIND}"),
                                  rules=str(EXAMPLES / "rules.yaml")),
                 "--stats-file", str(stats_file)).wait_up()
    wait_for(lambda: s.get("/readyz")[0] == 200, 60)
    wait_for(lambda: s.frames("street") > 20 and s.frames("lobby") > 20, 60)
    status, body = s.get("/api/v1/streams")
    assert status == 200
    streams = {x["id"]: x for x in body["streams"]}
    assert set(streams) == {"street", "lobby"}
    assert all(x["state"] == "playing" and x["fps"] > 0 for x in streams.values()), streams

    # Adding: a third file; the same id again; bad bodies; a scheme nothing plays.
    status, body = http("POST", s.url + "/api/v1/streams", src("third", f"file://{VTEST}"))
    assert status == 201 and body["id"] == "third", body
    wait_for(lambda: s.frames("third") > 5, 60)
    status, body = http("POST", s.url + "/api/v1/streams", src("third", f"file://{VTEST}"))
    assert status == 409 and "third" in body["error"]
    status, body = http("POST", s.url + "/api/v1/streams", b"{not json")
    assert status == 400 and "error" in body
    status, body = http("POST", s.url + "/api/v1/streams", {"id": "x", "uri": "file:///a",
                                                           "uri2": 1})
    assert status == 400 and "uri2" in body["error"]
    status, body = http("POST", s.url + "/api/v1/streams", {"id": "bad id", "uri": "file:///a"})
    assert status == 400 and "id" in body["error"]
    # A rules path to a file that is not rules: refused without quoting the file's text.
    secret = tmp_path / "token"
    secret.write_text("SECRETLINE second\n")
    status, body = http("POST", s.url + "/api/v1/streams",
                        src("r", f"file://{VTEST}", rules=str(secret)))
    assert status == 400 and "rules" in body["error"] and "SECRETLINE" not in body["error"], body
    status, body = http("POST", s.url + "/api/v1/streams", src("nosuch", "nosuch://x/y"))
    assert status == 422 and "nosuch" in body["error"], body
    status, body = http("POST", s.url + "/api/v1/streams", src("gone", "file:///no/such.mp4"))
    assert status == 422 and "/no/such.mp4" in body["error"], body

    # Recording is off in this config.
    status, body = http("POST", s.url + "/api/v1/streams/street/record")
    assert status == 409 and "recording" in body["error"], body

    # Removing.
    assert http("DELETE", s.url + "/api/v1/streams/third")[0] == 204
    assert http("DELETE", s.url + "/api/v1/streams/third")[0] == 404
    assert s.get("/api/v1/streams/third")[0] == 404
    assert s.get("/api/v1/nothing")[0] == 404

    # The others kept going.
    before = s.frames("street")
    wait_for(lambda: s.frames("street") > before + 10, 30)

    status, stats = s.get("/api/v1/stats")
    assert status == 200
    assert stats["inference"]["inferences"] > 0
    assert stats["process"]["resident_memory_bytes"] > 0

    # Alerts (the example rules count line crossings on the street video) name their source.
    wait_for(lambda: any(x.get("rule") == "road-crossing" for x in s.stdout_lines()), 90)

    t0 = time.time()
    assert s.stop() == 0, s.stderr()[-3000:]
    assert time.time() - t0 < STOP_BOUND_S
    lines = s.stdout_lines()
    alerts = [x for x in lines if "rule" in x]
    assert alerts and all(a["source"] == "street" for a in alerts if a["rule"] == "road-crossing")
    final = lines[-1]
    assert final["final"] is True
    assert final["sources"]["street"]["frames"] > 20
    assert final["sources"]["street"]["state"] == "stopped"
    assert json.loads(stats_file.read_text())["sources"]["lobby"]["frames"] > 20
    # The outputs' figures after the stop drained them (they once read {} here).
    out = final["outputs"]
    assert out.get("alerts:stdout:alerts", {}).get("delivered") == len(alerts), (out, alerts)
    assert json.loads(stats_file.read_text())["outputs"] == out
    err = s.stderr()
    assert "stopping" in err and "stopped" in err


def test_recording_writes_clips_for_alerts_and_on_request(services, tmp_path):
    clips = tmp_path / "clips"
    rules = tmp_path / "people.yaml"
    rules.write_text("rules:\n  - name: people\n    classes: [person]\n    min-count: 1\n")
    s = services(tmp_path, config(src("street", f"file://{VTEST}"), rules=str(rules),
                                  recording={"folder": str(clips), "pre_capture": 1,
                                             "post_capture": 1},
                                  encoder={"keyframe_interval": 10}))
    s.wait_up()
    wait_for(lambda: s.frames("street") > 30, 60)
    status, body = http("POST", s.url + "/api/v1/streams/street/record")
    assert status == 200, body
    asked = body["clip"]
    assert asked.startswith(str(clips / "street" / "street-")) and asked.endswith(".mp4"), body
    assert body["recorder"]["triggers"] >= 1
    assert http("POST", s.url + "/api/v1/streams/nosuch/record")[0] == 404
    # The alert (people appear at once) names its clip too.
    alert = wait_for(lambda: next((x for x in s.stdout_lines() if x.get("rule") == "people"), None))
    assert alert["clip"].startswith(str(clips / "street")), alert
    wait_for(lambda: os.path.exists(asked) and os.path.exists(alert["clip"]), 60)
    assert s.stop() == 0, s.stderr()[-3000:]
    assert not list(clips.glob("street/*.part"))
    files = sorted(str(p) for p in clips.glob("street/*.mp4"))
    assert asked in files and alert["clip"] in files, files
    found = discover(files)
    assert all(f["caps"].startswith("video/x-h264") for f in found.values()), found
    # On request: 1 s before and after, from a keyframe (every 10 frames: 1 s at 10 fps).
    assert 1.8 <= found[asked]["duration"] <= 3.2, found
    assert "clip" in s.stderr()


RTSP_CLIENT = """
import sys, gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
url, png, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = Gst.parse_launch(f"rtspsrc name=src location={url} latency=100 ! rtph264depay ! avdec_h264 "
                     "! videoconvert ! video/x-raw,format=RGB ! appsink name=out sync=false")
if len(sys.argv) > 5:
    p.get_by_name("src").set_property("user-id", sys.argv[4])
    p.get_by_name("src").set_property("user-pw", sys.argv[5])
sink = p.get_by_name("out")
p.set_state(Gst.State.PLAYING)
got, waited = [], 0
while len(got) < frames and waited < 20:
    err = p.get_bus().pop_filtered(Gst.MessageType.ERROR)
    if err:
        p.set_state(Gst.State.NULL)
        sys.exit(f"error: {err.parse_error()[0].message}")
    s = sink.emit("try-pull-sample", Gst.SECOND)
    if s is None:
        waited += 1
    else:
        got.append(s)
p.set_state(Gst.State.NULL)
if not got:
    sys.exit("no frames")
s = got[-1]
st = s.get_caps().get_structure(0)
w, h = st.get_value("width"), st.get_value("height")
ok, info = s.get_buffer().map(Gst.MapFlags.READ)
data = bytes(info.data)
# Pixels of the person boxes and labels (rtoverlay's class 0 colour, #1f77b4), which
# vtest.avi itself has none of.
blue = sum(1 for i in range(0, len(data) - 2, 3)
           if abs(data[i] - 31) <= 30 and abs(data[i + 1] - 119) <= 30 and abs(data[i + 2] - 180) <= 30)
print(len(got), w, h, blue)
pp = Gst.parse_launch(f"appsrc name=a ! videoconvert ! pngenc ! filesink location={png}")
a = pp.get_by_name("a")
a.set_property("caps", s.get_caps())
pp.set_state(Gst.State.PLAYING)
a.emit("push-buffer", s.get_buffer())
a.emit("end-of-stream")
pp.get_bus().timed_pop_filtered(10 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
pp.set_state(Gst.State.NULL)
"""


def test_rtsp_restream_serves_each_source_with_boxes_drawn(services, tmp_path):
    port = free_port()
    s = services(tmp_path, config(src("street", f"file://{VTEST}"),
                                  tracker={"enabled": False},
                                  restream={"listen": f"127.0.0.1:{port}"},
                                  encoder={"keyframe_interval": 10})).wait_up()
    wait_for(lambda: s.frames("street") > 10, 60)
    png = tmp_path / "rtsp.png"
    # Two clients at once: the source is encoded once, the media shared.
    clients = [subprocess.Popen(["/usr/bin/python3", "-c", RTSP_CLIENT,
                                 f"rtsp://127.0.0.1:{port}/street", str(png) if i == 0 else
                                 str(tmp_path / "rtsp2.png"), "20"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    for c in clients:
        out, err = c.communicate(timeout=120)
        assert c.returncode == 0, err[-2000:]
        frames, w, h, blue = map(int, out.split())
        assert frames == 20 and (w, h) == (768, 576), out
        assert blue > 500, f"no boxes drawn: {out}"
    assert png.stat().st_size > 0
    # An unknown mount is refused; a removed source's mount goes away.
    r = subprocess.run(["/usr/bin/python3", "-c", RTSP_CLIENT, f"rtsp://127.0.0.1:{port}/nosuch",
                        str(tmp_path / "x.png"), "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "error" in r.stderr, r.stderr[-500:]
    assert http("DELETE", s.url + "/api/v1/streams/street")[0] == 204
    r = subprocess.run(["/usr/bin/python3", "-c", RTSP_CLIENT, f"rtsp://127.0.0.1:{port}/street",
                        str(tmp_path / "y.png"), "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert s.stop() == 0, s.stderr()[-3000:]


def rtsp_client(url, png, frames, *credentials):
    """Runs RTSP_CLIENT for `frames` frames (user and password optional)."""
    return subprocess.run(["/usr/bin/python3", "-c", RTSP_CLIENT, url, str(png), str(frames),
                           *credentials], capture_output=True, text=True, timeout=120)


def rtsp_describe(port, path, authorization=None):
    """The status line of a raw RTSP DESCRIBE, with an optional Authorization header."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        extra = f"Authorization: {authorization}\r\n" if authorization else ""
        c.sendall(f"DESCRIBE rtsp://127.0.0.1:{port}/{path} RTSP/1.0\r\nCSeq: 1\r\n"
                  f"Accept: application/sdp\r\n{extra}\r\n".encode())
        return c.recv(4096).decode(errors="replace")


def test_rtsp_restream_with_a_password_admits_only_the_viewer(services, tmp_path):
    port = free_port()
    password = "s3cret pass"
    s = services(tmp_path, config(src("street", f"file://{VTEST}"),
                                  tracker={"enabled": False},
                                  restream={"listen": f"127.0.0.1:{port}", "user": "nvr"},
                                  encoder={"keyframe_interval": 10}),
                 extra_env={"RTANALYTICS_RTSP_PASSWORD": password}).wait_up()
    wait_for(lambda: s.frames("street") > 10, 60)
    url = f"rtsp://127.0.0.1:{port}/street"
    png = tmp_path / "rtsp.png"
    # No credentials, or a wrong password: refused, and Digest is what the server asks for.
    answer = rtsp_describe(port, "street")
    assert answer.startswith("RTSP/1.0 401") and "Digest" in answer, answer
    for credentials in ([], ["nvr", "wrong"], ["someone", password]):
        r = rtsp_client(url, png, 1, *credentials)
        assert r.returncode != 0 and "error" in r.stderr, (credentials, r.stderr[-500:])
    # Basic authentication would send the password in the clear: refused even when right.
    basic = base64.b64encode(f"nvr:{password}".encode()).decode()
    answer = rtsp_describe(port, "street", f"Basic {basic}")
    assert answer.startswith("RTSP/1.0 401"), answer
    # The viewer, with the password from the environment, gets the video.
    r = rtsp_client(url, png, 10, "nvr", password)
    assert r.returncode == 0, r.stderr[-2000:]
    frames, w, h, _ = map(int, r.stdout.split())
    assert frames == 10 and (w, h) == (768, 576), r.stdout
    assert "for user nvr (Digest" in s.stderr()
    assert s.stop() == 0, s.stderr()[-3000:]
    assert "s3cret" not in s.stderr()


def test_rtsp_restream_beyond_loopback_needs_a_password(services, tmp_path):
    s = services(tmp_path, config(src("street", f"file://{VTEST}"),
                                  restream={"listen": f"0.0.0.0:{free_port()}"}))
    assert s.proc.wait(timeout=60) == 2
    assert "needs a password: set restream.password or RTANALYTICS_RTSP_PASSWORD" in s.stderr()


def fetch(url):
    """(status, content type, body bytes) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def chromium():
    """Debian's headless Chromium through chromedriver (selenium)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as Driver
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1400,900", "--autoplay-policy=no-user-gesture-required"):
        o.add_argument(a)
    return webdriver.Chrome(service=Driver("/usr/bin/chromedriver"), options=o)


VIDEO_TIME = ("const v = document.querySelector(`.tile[data-source='${arguments[0]}'] video`);"
              "return v ? v.currentTime : -1")
ALERTS_OF = ("return [...document.querySelectorAll('#alerts li[data-alert]')]"
             ".filter(li => li.textContent.includes(arguments[0]))"
             ".map(li => [li.dataset.alert, [...li.querySelectorAll('a')].map(a => a.href)])")


def test_dashboard_plays_hls_and_shows_alerts_live_in_chromium(services, tmp_path):
    rules = tmp_path / "people.yaml"
    rules.write_text("rules:\n  - name: people\n    classes: [person]\n    min-count: 1\n"
                     f"outputs:\n  snapshot-dir: {tmp_path / 'snaps'}\n")
    hls = tmp_path / "hls"
    s = services(tmp_path, config(src("street", f"file://{VTEST}"), rules=str(rules),
                                  recording={"folder": str(tmp_path / "clips"),
                                             "pre_capture": 1, "post_capture": 1},
                                  hls={"folder": str(hls), "segment_seconds": 1,
                                       "playlist_length": 3, "max_files": 5},
                                  encoder={"keyframe_interval": 10})).wait_up()
    assert s.get("/api/v1/streams/street")[1]["hls"] == "/hls/street/index.m3u8"
    status, kind, _ = fetch(s.url + "/static/hls.min.js")
    assert status == 200 and kind.startswith("text/javascript"), "hls.js: run scripts/setup.sh"
    browser = chromium()
    try:
        browser.get(s.url + "/")
        # The video plays: hls.js loads the live playlist and its time advances.
        wait_for(lambda: browser.execute_script(VIDEO_TIME, "street") > 2, 60, 0.5)
        shown = {a for a, _ in browser.execute_script(ALERTS_OF, "")}
        # A source added now gets a tile, and its first alert reaches the list through the
        # event stream, with its clip and snapshot links.
        assert http("POST", s.url + "/api/v1/streams", src("lobby", f"file://{VTEST}"))[0] == 201
        alert, links = wait_for(lambda: (browser.execute_script(ALERTS_OF, "lobby") or [None])[0],
                                60, 0.5)
        assert alert not in shown
        wait_for(lambda: browser.execute_script(VIDEO_TIME, "lobby") > 1, 60, 0.5)
        shot = REPO / "target" / "screenshots" / "dashboard.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(shot))
        box = browser.execute_script(
            "const r = document.querySelector(`.tile[data-source='street'] video`)"
            ".getBoundingClientRect(); return [r.x, r.y, r.width, r.height, devicePixelRatio]")
        # Stopping with the page (and its event stream) open is still a clean stop.
        assert s.stop() == 0, s.stderr()[-3000:]
    finally:
        browser.quit()
    assert [u.rsplit("/", 1)[1] for u in links] == ["clip", "snapshot"], links
    # The service is gone; the files the links name are checked on disk through the log.
    kept = next(x for x in s.stdout_lines() if x.get("id") == alert)
    assert os.path.getsize(kept["snapshot"]) > 0 and os.path.getsize(kept["clip"]) > 0, kept
    # Boxes are drawn on the video the page shows (rtoverlay's person colour, #1f77b4).
    import cv2
    import numpy as np
    img = cv2.imread(str(shot))
    x, y, w, h, dpr = box
    video = img[int(y * dpr):int((y + h) * dpr), int(x * dpr):int((x + w) * dpr)].astype(int)
    blue = np.sum((abs(video[..., 0] - 180) <= 30) & (abs(video[..., 1] - 119) <= 30)
                  & (abs(video[..., 2] - 31) <= 30))
    assert blue > 200, f"no boxes on the dashboard's video ({blue} pixels): see {shot}"
    # HLS on disk: more segments kept than listed, and every listed one is there.
    for sid in ("street", "lobby"):
        listed = [x for x in (hls / sid / "index.m3u8").read_text().splitlines()
                  if x.endswith(".ts")]
        kept_files = list((hls / sid).glob("*.ts"))
        assert 0 < len(listed) <= 3 and len(kept_files) <= 5, (listed, kept_files)
        assert all((hls / sid / x).exists() for x in listed)


def test_dashboard_files_and_alert_links_over_http(services, tmp_path):
    rules = tmp_path / "people.yaml"
    rules.write_text("rules:\n  - name: people\n    classes: [person]\n    min-count: 1\n"
                     f"outputs:\n  snapshot-dir: {tmp_path / 'snaps'}\n")
    s = services(tmp_path, config(src("street", f"file://{VTEST}"), rules=str(rules),
                                  recording={"folder": str(tmp_path / "clips"),
                                             "pre_capture": 1, "post_capture": 1},
                                  hls={"folder": str(tmp_path / "hls")},
                                  encoder={"keyframe_interval": 10})).wait_up()
    status, kind, page = fetch(s.url + "/")
    assert status == 200 and kind.startswith("text/html") and b"/api/v1/events" in page
    alert = wait_for(lambda: (s.get("/api/v1/alerts")[1]["alerts"] or [None])[0], 60)
    assert alert["source"] == "street" and alert["snapshot"] and alert["clip"], alert
    status, kind, jpeg = fetch(f"{s.url}/api/v1/alerts/{alert['id']}/snapshot")
    assert status == 200 and kind == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
    # The clip is there once its post-capture has passed.
    clip = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
        fetch(f"{s.url}/api/v1/alerts/{alert['id']}/clip")), 60, 0.5)
    assert clip[1] == "video/mp4" and clip[2][4:8] == b"ftyp"
    assert fetch(f"{s.url}/api/v1/alerts/nosuch/clip")[0] == 404
    # Only the service's own HLS files are served.
    wait_for(lambda: fetch(s.url + "/hls/street/index.m3u8")[0] == 200, 60)
    for bad in ("/hls/street/..%2F..%2Fpeople.yaml", "/hls/street/x.yaml", "/hls/..%2Fx/a.ts"):
        assert fetch(s.url + bad)[0] == 404, bad
    assert s.stop() == 0, s.stderr()[-3000:]


def test_detection_files_per_source(services, tmp_path):
    out = tmp_path / "dets-{source}.jsonl"
    c = config(src("a", f"file://{VTEST}"), src("b", f"file://{MEGAMIND}"),
               outputs={"alerts": {"stdout": False}, "detections": {"file": str(out)}})
    c["model"]["confidence_threshold"] = 0.5
    s = services(tmp_path, c).wait_up()
    wait_for(lambda: s.frames("a") > 30 and s.frames("b") > 30, 60)
    assert s.stop() == 0
    for sid, size in (("a", (768, 576)), ("b", (720, 528))):
        docs = [json.loads(x) for x in (tmp_path / f"dets-{sid}.jsonl").read_text().splitlines()]
        assert len(docs) > 30
        assert all(d["source"] == sid and (d["width"], d["height"]) == size for d in docs)
        assert sum(len(d["objects"]) for d in docs) > 0
        # model.confidence_threshold reaches rtinfer (the default is 0.3).
        assert min(o["confidence"] for d in docs for o in d["objects"]) >= 0.5
        # Frames in order, every one written (the stop drains the outputs).
        frames = [d["frame"] for d in docs]
        assert frames == sorted(frames)


def test_prometheus_scrapes_the_metrics(services, tmp_path):
    s = services(tmp_path, config(src("street", f"file://{VTEST}"),
                                  src("lobby", f"file://{MEGAMIND}"))).wait_up()
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rtanalytics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{s.port}']\n")
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))
    try:
        def query(q):
            url = f"http://127.0.0.1:{prom_port}/api/v1/query?query={urllib.parse.quote(q)}"
            try:
                status, body = http("GET", url)
            except OSError:
                return []
            return body["data"]["result"] if status == 200 else []

        def frames_per_source():
            got = {r["metric"]["source"]: float(r["value"][1])
                   for r in query("rtanalytics_frames_total")}
            return got if set(got) == {"street", "lobby"} and min(got.values()) > 0 else None

        got = wait_for(frames_per_source, 90, step=1)
        assert got["street"] > 0 and got["lobby"] > 0
        assert float(wait_for(lambda: query("rtanalytics_inferences_total"), 30)[0]["value"][1]) > 0
        hist = wait_for(lambda: query("rtanalytics_inference_duration_seconds_count"), 30)
        assert float(hist[0]["value"][1]) > 0
        le = query("rtanalytics_inference_duration_seconds_bucket")
        assert {r["metric"]["le"] for r in le} >= {"0.001", "0.01", "+Inf"}
        assert float(query("rtanalytics_process_resident_memory_bytes")[0]["value"][1]) > 1e6
        up = query('up{job="rtanalytics"}')
        assert up and up[0]["value"][1] == "1"
    finally:
        prom.terminate()
        prom.wait(timeout=30)
    assert s.stop() == 0


def test_failed_source_is_reported_and_others_go_on(services, tmp_path):
    s = services(tmp_path, config(src("street", f"file://{VTEST}"),
                                  src("broken", "nosuch://camera/1"),
                                  src("off", "file:///not/used.mp4", enabled=False))).wait_up()
    wait_for(lambda: s.frames("street") > 20, 60)
    status, body = s.get("/readyz")
    assert status == 503
    assert [x["id"] for x in body["not_ready"]] == ["broken"]
    assert "nosuch" in body["not_ready"][0]["last_error"]
    streams = {x["id"]: x for x in s.get("/api/v1/streams")[1]["streams"]}
    assert streams["broken"]["state"] == "failed"
    assert streams["off"]["state"] == "stopped"
    assert streams["street"]["state"] == "playing"
    assert "source broken cannot start" in s.stderr()
    # Removing the broken source makes the service ready.
    assert http("DELETE", s.url + "/api/v1/streams/broken")[0] == 204
    wait_for(lambda: s.get("/readyz")[0] == 200, 10)
    assert s.stop() == 0


def test_removing_the_last_playing_source_keeps_the_service(services, tmp_path):
    # A clip that ends by itself, and a looping file. Removing the looping one leaves only
    # ended sources: the pipeline then posts EOS, which once stopped the whole service.
    clip = tmp_path / "clip.avi"
    subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=20", "!",
                    "video/x-raw,width=320,height=240,framerate=10/1", "!", "jpegenc", "!",
                    "avimux", "!", "filesink", f"location={clip}"], check=True, timeout=60)
    s = services(tmp_path, config(src("clip", f"file://{clip}", loop=False),
                                  src("street", f"file://{VTEST}"))).wait_up()
    state = lambda sid: s.get(f"/api/v1/streams/{sid}")[1]["state"]
    wait_for(lambda: state("clip") == "ended", 60)
    assert http("DELETE", s.url + "/api/v1/streams/street")[0] == 204
    time.sleep(3)
    assert s.proc.poll() is None, s.stderr()
    assert "serving the API on" in s.stderr()
    assert s.get("/healthz")[0] == 200
    # A source added later still runs.
    status, body = http("POST", s.url + "/api/v1/streams", src("again", f"file://{VTEST}"))
    assert status == 201, body
    wait_for(lambda: s.frames("again") > 5, 60)
    assert s.stop() == 0


def test_a_delete_racing_a_post_never_poisons_the_id(services, tmp_path):
    import threading
    s = services(tmp_path, config(src("main", f"file://{VTEST}"))).wait_up()
    for i in range(20):
        posted = {}
        t = threading.Thread(target=lambda: posted.update(
            r=http("POST", s.url + "/api/v1/streams", src("c", f"file://{VTEST}"))))
        t.start()
        time.sleep(0.0003 * i)  # lands at varying points of the first POST's start
        deleted = http("DELETE", s.url + "/api/v1/streams/c")[0]
        t.join()
        assert posted["r"][0] in (201, 404), posted
        assert deleted in (204, 404), deleted
        if posted["r"][0] == 201 and deleted == 404:
            # The DELETE came first: the source is there, and goes now.
            assert http("DELETE", s.url + "/api/v1/streams/c")[0] == 204
        # Adding it again works, once any teardown is done (409 until then).
        status, body = 409, None
        for _ in range(100):
            status, body = http("POST", s.url + "/api/v1/streams", src("c", f"file://{VTEST}"))
            if status != 409:
                break
            time.sleep(0.1)
        assert status == 201, (i, status, body)
        assert s.get("/api/v1/streams/c")[1]["state"] != "failed"
        assert http("DELETE", s.url + "/api/v1/streams/c")[0] == 204
    assert s.stop() == 0


def test_an_hls_writer_that_fails_says_so_and_detection_goes_on(services, tmp_path):
    hls = tmp_path / "hls"
    s = services(tmp_path, config(src("street", f"file://{VTEST}"),
                                  hls={"folder": str(hls), "segment_seconds": 1},
                                  encoder={"keyframe_interval": 10})).wait_up()
    wait_for(lambda: (hls / "street" / "index.m3u8").exists(), 60)
    # The folder goes away under the writer (a disk unmounted, a cleanup script).
    shutil.rmtree(hls / "street")
    error = wait_for(lambda: s.get("/api/v1/streams/street")[1]["last_error"], 60)
    assert error.startswith("HLS stopped:"), error
    before = s.frames("street")
    wait_for(lambda: s.frames("street") > before + 20, 60)
    assert s.get("/api/v1/streams/street")[1]["state"] == "playing"
    assert "HLS" in s.stderr()
    assert s.stop() == 0, s.stderr()[-3000:]


def test_a_source_failing_while_playing_fails_only_itself(services, tmp_path):
    # 321x241: the encoder of the HLS branch cannot take it, and fails while playing. Its
    # error comes twice (x264enc's, then its queue's); the second, from a branch already
    # torn down, once stopped the whole service.
    odd = tmp_path / "odd.avi"
    subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=50", "!",
                    "video/x-raw,width=321,height=241,framerate=10/1", "!", "jpegenc", "!",
                    "avimux", "!", "filesink", f"location={odd}"], check=True, env=env())
    s = services(tmp_path, config(src("street", f"file://{VTEST}"), src("odd", f"file://{odd}"),
                                  hls={"folder": str(tmp_path / "hls")})).wait_up()
    wait_for(lambda: s.get("/api/v1/streams/odd")[1]["state"] == "failed", 60)
    assert "x264" in s.get("/api/v1/streams/odd")[1]["last_error"]
    before = s.frames("street")
    wait_for(lambda: s.frames("street") > before + 30, 60)
    assert s.proc.poll() is None, s.stderr()[-3000:]
    assert "the pipeline failed" not in s.stderr()
    assert s.stop() == 0, s.stderr()[-3000:]


def test_bad_model_stops_the_start(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_text("not a model")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model:\n  file: {model}\nhttp:\n  listen: 127.0.0.1:{free_port()}\n")
    r = subprocess.run([str(BIN), "run", "-c", str(cfg)], env=env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "model" in r.stderr.lower() and str(model) in r.stderr, r.stderr[-2000:]


def test_token_is_required_beyond_loopback(services, tmp_path):
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model:\n  file: {YOLOX}\nhttp:\n  listen: 0.0.0.0:{port}\n")
    r = subprocess.run([str(BIN), "run", "-c", str(cfg)], env=env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "token" in r.stderr, r.stderr

    s = services(tmp_path, config(http={"listen": f"0.0.0.0:{free_port()}"}),
                 extra_env={"RTANALYTICS_TOKEN": "s3cret-token"}).wait_up()
    assert s.get("/readyz")[0] in (200, 503)
    for path in ("/api/v1/streams", "/api/v1/stats", "/metrics"):
        status, body = s.get(path)
        assert status == 401 and "Bearer" in body["error"], (path, body)
        assert s.get(path, token="wrong")[0] == 401
        assert s.get(path, token="s3cret-token")[0] == 200
    # The dashboard page is open; a browser's reads may carry the token as a cookie, but
    # nothing that changes state may.
    assert fetch(s.url + "/")[0] == 200
    with_cookie = urllib.request.Request(s.url + "/api/v1/alerts",
                                         headers={"Cookie": "rt_token=s3cret-token"})
    assert urllib.request.urlopen(with_cookie, timeout=30).status == 200
    post = urllib.request.Request(s.url + "/api/v1/streams", method="POST",
                                  data=json.dumps(src("x", f"file://{VTEST}")).encode(),
                                  headers={"Cookie": "rt_token=s3cret-token",
                                           "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=30)
    assert refused.value.code == 401
    assert s.stop() == 0


def test_json_logs_and_masked_credentials(services, tmp_path):
    # An RTSP camera that refuses connections: retried, reported, its password never shown.
    s = services(tmp_path, config(src("gate", "rtsp://admin:hunter2@127.0.0.1:1/stream")),
                 "--log-format", "json").wait_up()
    wait_for(lambda: s.get("/api/v1/streams/gate")[1]["reconnects"] >= 1, 60)
    status, body = s.get("/readyz")
    assert status == 503 and body["not_ready"][0]["id"] == "gate"
    seen = [s.get("/api/v1/streams")[1], s.get("/api/v1/stats")[1], s.get("/metrics")[1]]
    t0 = time.time()
    assert s.stop() == 0
    assert time.time() - t0 < STOP_BOUND_S, "a source that never connected held up the stop"
    err = s.stderr()
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(r.get("source") == "gate" for r in records)
    assert all("level" in r and "timestamp" in r for r in records)
    for text in [err, *map(str, seen)]:
        assert "hunter2" not in text
    assert "admin:***@127.0.0.1:1" in json.dumps(seen[0])


def test_shards_cover_every_source_once(services, tmp_path):
    # Unreachable cameras are enough to see who runs what.
    sources = [src(f"cam-{i}", f"rtsp://127.0.0.1:1/cam{i}") for i in range(12)]
    runs = [services(tmp_path, config(*sources), "--shard", f"{i}/2", name=f"shard{i}")
            for i in range(2)]
    owned = []
    for s in runs:
        s.wait_up()
        owned.append({x["id"] for x in s.get("/api/v1/streams")[1]["streams"]})
        assert s.get("/api/v1/stats")[1]["shard"] in ("0/2", "1/2")
    assert owned[0] | owned[1] == {x["id"] for x in sources}
    assert not owned[0] & owned[1]
    assert owned[0] and owned[1]
    for s in runs:
        assert s.stop() == 0


def process_figures(pid):
    """(RSS in KiB, threads other than the HTTP runtime's, all threads)."""
    status = open(f"/proc/{pid}/status").read()
    rss = int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1])
    names = [open(f"/proc/{pid}/task/{t}/comm").read().strip()
             for t in os.listdir(f"/proc/{pid}/task")]
    return rss, sum(1 for n in names if not n.startswith("rtanalytics-htt")), len(names)


def settled_figures(pid):
    """process_figures with the fewest threads of 5 samples 0.3 s apart: the looping main
    source's restarts start and end threads of their own for a moment (a CI run once
    counted 3 of them in the first sample only)."""
    samples = []
    for _ in range(5):
        samples.append(process_figures(pid))
        time.sleep(0.3)
    return min(samples, key=lambda f: (f[1], f[2]))


def test_add_and_remove_50_sources_returns_to_baseline(services, tmp_path, rtsp):
    s = services(tmp_path, config(src("main", f"file://{VTEST}"))).wait_up()
    wait_for(lambda: s.frames("main") > 10, 60)

    def one_round(i):
        uri = f"file://{VTEST}" if i % 2 else f"rtsp://127.0.0.1:{rtsp}/test"
        status, body = http("POST", s.url + "/api/v1/streams", src(f"dyn-{i}", uri))
        assert status == 201, body
        wait_for(lambda: s.frames(f"dyn-{i}") >= 3, 30, step=0.05)
        assert http("DELETE", s.url + f"/api/v1/streams/dyn-{i}")[0] == 204

    for i in range(10):  # warm-up: allocator pools, codec and RTSP plugin loading
        one_round(i)
    time.sleep(1)
    rss0, threads0, all0 = settled_figures(s.proc.pid)
    for i in range(10, 60):
        one_round(i)
    time.sleep(1)
    rss1, threads1, all1 = settled_figures(s.proc.pid)
    print(f"RSS {rss0} -> {rss1} KiB over 50 sources, threads {threads0} -> {threads1} "
          f"(with the HTTP runtime's {all0} -> {all1})")
    assert threads1 == threads0, "threads of removed sources are left behind"
    assert all1 <= all0 + 4
    # A source whose elements or buffers were left behind keeps at least one decoded vtest frame
    # (648 KiB) and one model input (2 MiB): 50 of them would add over 32 MiB. The allocator's
    # arenas settle a few MiB higher first (measured: +3 MiB by round 60 on 2 cores, then flat
    # up to round 160; +9 MiB on a CI machine with more cores), hence 400 KiB a source.
    assert rss1 - rss0 < 50 * 400, f"RSS grew by {rss1 - rss0} KiB over 50 added sources"
    status, body = s.get("/api/v1/streams")
    assert [x["id"] for x in body["streams"]] == ["main"]
    assert s.get("/readyz")[0] == 200
    assert s.stop() == 0


def consume_all(port, subject, durable):
    """Every message of a JetStream subject, through a durable pull consumer (nats-py)."""
    import asyncio

    import nats

    async def run():
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, durable=durable)
        got = []
        while True:
            try:
                batch = await sub.fetch(100, timeout=2)
            # nats-py raises its own TimeoutError, or asyncio's (its base) when the fetch's
            # deadline runs out between its two requests: both mean no more messages.
            except asyncio.TimeoutError:
                break
            for m in batch:
                got.append((m.subject, m.headers.get("Nats-Msg-Id"), json.loads(m.data)))
                await m.ack()
        await nc.close()
        return got

    return asyncio.run(run())


def test_alerts_reach_nats_jetstream_exactly_once_across_a_server_restart(services, tmp_path):
    pytest.importorskip("nats")
    port = free_port()
    server_cmd = ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port),
                  "-sd", str(tmp_path / "jetstream")]
    server = subprocess.Popen(server_cmd, stderr=subprocess.DEVNULL)
    rules = tmp_path / "rules.yaml"
    # Start and end alerts per tracked person: many alerts from vtest in a few seconds.
    rules.write_text("rules:\n  - name: person\n    classes: [person]\n    key: track\n"
                     "    min-duration: 0.3\n    ended: true\n    cooldown: 0\n")
    nats_url = f"nats://127.0.0.1:{port}/site1.alerts"
    try:
        s = services(tmp_path, config(src("street", f"file://{VTEST}"), rules=str(rules),
                                      outputs={"alerts": {"stdout": True, "nats_url": nats_url},
                                               "detections": {"nats_url": nats_url.replace(
                                                   "site1.alerts", "site1.dets")}})).wait_up()
        alerts = lambda: [x for x in s.stdout_lines() if "rule" in x]  # noqa: E731
        wait_for(lambda: len(alerts()) >= 3, 60)
        server.kill()
        server.wait()
        down = len(alerts())
        # Away for longer than an acknowledgement may take (5 s), with alerts meanwhile.
        time.sleep(8)
        wait_for(lambda: len(alerts()) >= down + 3, 60)
        server = subprocess.Popen(server_cmd, stderr=subprocess.DEVNULL)
        wait_for(lambda: len(alerts()) >= down + 6, 60)
        assert s.stop() == 0, s.stderr()[-3000:]
        emitted = [a["id"] for a in alerts()]
        err = s.stderr()
        assert "cannot publish" in err and "publishing again" in err, err[-3000:]
        got = consume_all(port, "site1.alerts.>", "test-alerts")
        assert sorted(i for _, i, _ in got) == sorted(emitted), "not every alert exactly once"
        assert all(subj == "site1.alerts.street" and doc["source"] == "street"
                   and doc["id"] == i for subj, i, doc in got)
        # Detections too, one message per frame: every frame number at most once.
        dets = consume_all(port, "site1.dets.>", "test-dets")
        frames = [doc["frame"] for _, _, doc in dets]
        assert len(frames) > 20 and len(frames) == len(set(frames))
    finally:
        server.kill()
        server.wait()


def make_certs(d):
    """A CA (ca.pem) and a certificate for 127.0.0.1 signed by it (server.pem, server.key)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=rt-test-ca", "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem")


def test_alerts_reach_an_mqtts_broker_that_wants_a_password(services, tmp_path):
    d = tmp_path / "broker"
    d.mkdir()
    make_certs(d)
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(d / "passwd"), "cam", "p@ss"],
                   check=True)
    port = free_port()
    # "user root": started as root, mosquitto would switch to a user that cannot read tmp_path.
    (d / "mosquitto.conf").write_text(
        f"user root\nallow_anonymous false\npassword_file {d}/passwd\n"
        f"listener {port} 127.0.0.1\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(d / "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    received = open(tmp_path / "received.txt", "w")
    sub = None
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 10)
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port),
                                "--cafile", str(d / "ca.pem"), "-u", "cam", "-P", "p@ss",
                                "-t", "site/alerts", "-q", "1"], stdout=received)
        rules = tmp_path / "rules.yaml"
        rules.write_text("rules:\n  - name: person\n    classes: [person]\n    key: track\n"
                         "    min-duration: 0.3\n    cooldown: 0\n")
        url = f"mqtts://cam:p%40ss@127.0.0.1:{port}/site/alerts"
        # The broker's CA joins the "system store" the way an operator's would: SSL_CERT_FILE.
        s = services(tmp_path, config(src("street", f"file://{VTEST}"), rules=str(rules),
                                      outputs={"alerts": {"stdout": True, "mqtt_url": url}}),
                     extra_env={"SSL_CERT_FILE": str(d / "ca.pem")}).wait_up()
        alerts = lambda: [x["id"] for x in s.stdout_lines() if "rule" in x]  # noqa: E731
        wait_for(lambda: len(alerts()) >= 3, 60)
        assert s.stop() == 0, s.stderr()[-3000:]
        sent = alerts()
        got = lambda: [json.loads(x)["id"] for x in open(received.name) if x.strip()]  # noqa
        wait_for(lambda: set(got()) >= set(sent), 20)
        err = s.stderr()
        assert "unreachable" not in err, err[-3000:]
        assert "p@ss" not in err and "p%40ss" not in err
    finally:
        for p in [sub, broker]:
            if p:
                p.kill()
                p.wait()


def test_open_metrics_option(services, tmp_path):
    s = services(tmp_path, config(http={"listen": f"0.0.0.0:{free_port()}",
                                        "metrics_without_token": True}),
                 extra_env={"RTANALYTICS_TOKEN": "t0ken"}).wait_up()
    assert s.get("/metrics")[0] == 200
    assert s.get("/api/v1/streams")[0] == 401
    assert s.stop() == 0


def test_deploy_manifests_are_valid(tmp_path):
    """The Kubernetes manifests against the Kubernetes schemas, the config inside them against
    ours, and the systemd unit with systemd-analyze."""
    yaml = pytest.importorskip("yaml")
    jsonschema = pytest.importorskip("jsonschema")
    manifest = REPO / "deploy" / "kubernetes" / "rtanalytics.yaml"
    validator = shutil.which("kubernetes-validate") or str(
        os.path.join(os.path.dirname(sys.executable), "kubernetes-validate"))
    r = subprocess.run([validator, "--strict", "--quiet", str(manifest)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    docs = list(yaml.safe_load_all(manifest.read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "Service", "StatefulSet"}
    pod = kinds["StatefulSet"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert f"--shards={kinds['StatefulSet']['spec']['replicas']}" in container["args"]
    schema = json.loads((REPO / "rtanalytics" / "config.schema.json").read_text())
    cameras = yaml.safe_load(kinds["ConfigMap"]["data"]["cameras.yaml"])
    jsonschema.validate(cameras, schema)
    rules = tmp_path / "rules.yaml"
    rules.write_text(kinds["ConfigMap"]["data"]["rules.yaml"])
    cfg = tmp_path / "cameras.yaml"
    cfg.write_text(kinds["ConfigMap"]["data"]["cameras.yaml"]
                   .replace("/etc/rtanalytics/rules.yaml", str(rules))
                   .replace("/models/yolox_nano.onnx", str(YOLOX)))
    r = check(cfg)
    assert r.returncode == 0, r.stderr

    unit = (REPO / "deploy" / "systemd" / "rtanalytics.service").read_text()
    local = tmp_path / "rtanalytics.service"
    local.write_text(unit.replace("/opt/rtanalytics/rtanalytics", str(BIN)))
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_second_signal_stops_at_once(services, tmp_path):
    # A webhook that accepts connections and never answers keeps alerts queued, so the clean
    # stop would wait for them up to its timeout (60 s here).
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(100)
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: person\n    classes: [person]\n    key: track\n"
                     "    min-duration: 0.3\n    cooldown: 0\n")
    url = f"http://127.0.0.1:{hole.getsockname()[1]}/hook"
    s = services(tmp_path, config(src("street", f"file://{VTEST}"), rules=str(rules),
                                  stop_timeout_ms=60000,
                                  outputs={"alerts": {"stdout": True, "webhook_url": url}}))
    s.wait_up()
    wait_for(lambda: len([x for x in s.stdout_lines() if "rule" in x]) >= 3, 60)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert s.proc.poll() is None, "the first signal should wait for the queued alerts"
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=10) == 130
    assert time.time() - t0 < 5
    assert "second signal" in s.stderr()
    hole.close()
