#!/usr/bin/python3
"""How many frames of a live source reach a clock-synced sink after their render time, with
rtinfer in between: the check that rtinfer's answer to the LATENCY query is large enough.

  GST_PLUGIN_PATH=target/release /usr/bin/python3 scripts/late_frames.py [MODEL] [FPS] [FRAMES]

MODEL defaults to $RT_SHARED/models/yolov8n_int8_dynamic.onnx (RT_SHARED defaults to
../shared). Prints the pipeline latency and the frames that came after their render time.
"""
import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

shared = os.environ.get("RT_SHARED", os.path.join(os.path.dirname(__file__), "../../shared"))
model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(shared, "models/yolov8n_int8_dynamic.onnx")
fps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
frames = int(sys.argv[3]) if len(sys.argv) > 3 else 90

Gst.init(None)
p = Gst.parse_launch(
    f"videotestsrc is-live=true num-buffers={frames} ! video/x-raw,width=640,height=480,framerate={fps}/1 "
    f"! rtinfer model-file={model} ! fakesink name=sink sync=true")
arrivals = []


def arrived(_pad, info):
    # A live source's segment starts at 0: the timestamp is the frame's running time.
    arrivals.append((p.get_clock().get_time() - p.get_base_time() - info.get_buffer().pts) / 1e6)
    return Gst.PadProbeReturn.OK


p.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, arrived)
p.set_state(Gst.State.PLAYING)
msg = p.get_bus().timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
q = Gst.Query.new_latency()
p.query(q)
_, latency, _ = q.parse_latency()
p.set_state(Gst.State.NULL)
if msg is None or msg.type == Gst.MessageType.ERROR:
    sys.exit(f"the pipeline failed: {msg.parse_error()[0].message if msg else 'timed out'}")
late = sum(1 for a in arrivals if a > latency / 1e6)
print(f"pipeline latency {latency / 1e6:.1f} ms; {late} of {len(arrivals)} frames reached the "
      "sink after their render time")
