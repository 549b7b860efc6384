#!/usr/bin/python3
"""A real RTSP server for the tests (GStreamer's RTSP server through PyGObject), on loopback.

    rtsp_server.py PORT VIDEO

Serves VIDEO as MJPEG (plugins-good only) at rtsp://127.0.0.1:PORT/test, over UDP and TCP,
and prints "ready" once it listens. Needs gir1.2-gst-rtsp-server-1.0 and /usr/bin/python3.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    port, video = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( filesrc location={video} ! decodebin ! videoconvert ! videoscale "
        "! video/x-raw,width=384,height=288 ! jpegenc quality=70 ! rtpjpegpay name=pay0 pt=26 )")
    # One pipeline per client: with a shared media, a second client joining while the first
    # plays can abort GStreamer 1.22's server (rtsp-stream.c: gst_pad_unlink (tee_pad,
    # sink_pad) assertion), which made the tests with a UDP and a TCP client flaky.
    factory.set_shared(False)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
