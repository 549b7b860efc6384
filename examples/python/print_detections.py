#!/usr/bin/python3
"""Reads RtDetectionMeta from Python with PyGObject alone (no project code needed).

    GST_PLUGIN_PATH=target/release /usr/bin/python3 examples/python/print_detections.py \
        VIDEO MODEL [MAX_FRAMES]

Needs python3-gi and python3-gst-1.0 (Debian/Ubuntu); use the system /usr/bin/python3.
"""
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def detections(buffer):
    """The RtDetectionMeta of a buffer as a dict, or None."""
    meta = buffer.get_custom_meta("RtDetectionMeta")
    if meta is None:
        return None
    s = meta.get_structure()
    objects = []
    for o in s.get_value("objects"):
        objects.append({
            "class_id": o.get_value("class-id"),
            "label": o.get_value("label"),
            "confidence": o.get_value("confidence"),
            "box": [o.get_value(k) for k in ("x", "y", "w", "h")],
            "track_id": o.get_value("track-id"),
        })
    return {
        "source_id": s.get_value("source-id"),
        "frame": s.get_value("frame-number"),
        "size": (s.get_value("width"), s.get_value("height")),
        "stale": s.get_value("stale"),
        "objects": objects,
    }


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    video, model = argv[1], argv[2]
    max_frames = int(argv[3]) if len(argv) > 3 else 0
    Gst.init(None)
    # sync=false: analysis runs as fast as it can. A clock-synced sink would make
    # videoconvert drop frames (QoS) whenever inference falls behind real time.
    pipeline = Gst.parse_launch(
        f'filesrc location="{video}" ! decodebin ! videoconvert ! rtpreprocess ! '
        f'rtinfer model-file="{model}" ! fakesink name=sink sync=false'
    )
    seen = {"frames": 0, "with_meta": 0}

    def on_buffer(pad, info):
        if max_frames and seen["frames"] >= max_frames:
            return Gst.PadProbeReturn.DROP  # frames in flight after the EOS was asked for
        d = detections(info.get_buffer())
        seen["frames"] += 1
        if seen["frames"] == max_frames:
            # Not from the streaming thread: the EOS travels down from the source.
            threading.Thread(target=pipeline.send_event, args=(Gst.Event.new_eos(),)).start()
        if d is not None:
            seen["with_meta"] += 1
            labels = ", ".join(f"{o['label']} {o['confidence']:.2f}" for o in d["objects"])
            print(f"frame {d['frame']}: {len(d['objects'])} objects: {labels}")
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("sink").get_static_pad("sink").add_probe(
        Gst.PadProbeType.BUFFER, on_buffer)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(
        Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg.type == Gst.MessageType.ERROR:
        err, debug = msg.parse_error()
        sys.exit(f"error: {err.message} ({debug})")
    print(f"{seen['with_meta']} of {seen['frames']} frames carried RtDetectionMeta")
    return 0 if seen["frames"] > 0 and seen["with_meta"] == seen["frames"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
