"""A WHEP server for tests, built on aiortc (PyPI) and aiohttp: serves one video file, looped,
to every viewer that POSTs an SDP offer.

    python whep_server.py --file vtest.avi --host 10.0.0.2 --port 8889 [--token SECRET]

Endpoints: POST /whep (offer in, 201 + answer + Location out), DELETE /whep/<id> (ends a
session), GET /sessions (JSON: sessions open now, and the number created and deleted; for the
tests to check that a client ends its session).
"""

import argparse
import asyncio
import json
import uuid

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

sessions = {}
counts = {"created": 0, "deleted": 0}


async def close_session(sid):
    pc, player = sessions.pop(sid)
    if player.video:
        player.video.stop()
    await pc.close()


async def offer(request):
    args = request.app["args"]
    if args.token and request.headers.get("Authorization") != f"Bearer {args.token}":
        return web.Response(status=401, text="bad or missing bearer token")
    if request.content_type != "application/sdp":
        return web.Response(status=415, text="expected application/sdp")
    pc = RTCPeerConnection()
    player = MediaPlayer(args.file, loop=True)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
    for t in pc.getTransceivers():
        if t.kind == "video":
            pc.addTrack(player.video)
    # aiortc gathers all its candidates before it returns the answer (no trickle needed).
    await pc.setLocalDescription(await pc.createAnswer())
    sid = uuid.uuid4().hex
    sessions[sid] = (pc, player)
    counts["created"] += 1

    @pc.on("connectionstatechange")
    async def on_state():
        print(f"session {sid}: {pc.connectionState}", flush=True)
        if pc.connectionState == "failed" and sid in sessions:
            await close_session(sid)

    return web.Response(
        status=201,
        content_type="application/sdp",
        text=pc.localDescription.sdp,
        headers={"Location": f"/whep/{sid}"},
    )


async def delete(request):
    sid = request.match_info["sid"]
    if sid not in sessions:
        return web.Response(status=404)
    await close_session(sid)
    counts["deleted"] += 1
    return web.Response(status=200)


async def status(request):
    return web.json_response({"open": len(sessions), **counts})


async def on_shutdown(app):
    await asyncio.gather(*(close_session(s) for s in list(sessions)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8889)
    ap.add_argument("--token")
    args = ap.parse_args()
    app = web.Application()
    app["args"] = args
    app.add_routes(
        [web.post("/whep", offer), web.delete("/whep/{sid}", delete), web.get("/sessions", status)]
    )
    app.on_shutdown.append(on_shutdown)
    print(json.dumps({"listening": f"http://{args.host}:{args.port}/whep"}), flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
