#!/usr/bin/env python3
"""Memory over a long run: rtanalytics with N copies of vtest.avi (looping) for SECONDS,
RSS sampled every 10 s; prints RSS at 1 minute and at the end, and their ratio.

    scripts/rss_soak.py [--sources 4] [--seconds 600]

Needs the release build (cargo build --release) and RT_SHARED (default ../shared).
"""
import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("RT_SHARED", REPO.parent / "shared")).resolve()
VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--port", type=int, default=18377)
    args = ap.parse_args()
    config = {
        "model": {"file": str(SHARED / "models" / "yolox_nano.onnx"), "batch_size": args.sources},
        "sources": [{"id": f"cam{i}", "uri": f"file://{VTEST}"} for i in range(args.sources)],
        "http": {"listen": f"127.0.0.1:{args.port}"},
        "outputs": {"alerts": {"stdout": False}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        cfg = pathlib.Path(tmp) / "soak.yaml"
        cfg.write_text(json.dumps(config))
        proc = subprocess.Popen([str(REPO / "target/release/rtanalytics"), "run", "-c", str(cfg),
                                 "--log-level", "warn"], stdout=subprocess.DEVNULL)
        start = time.time()
        samples = []
        try:
            while time.time() - start < args.seconds:
                time.sleep(10)
                if proc.poll() is not None:
                    sys.exit(f"rtanalytics ended early ({proc.returncode})")
                samples.append((time.time() - start, rss_kib(proc.pid)))
                print(f"{samples[-1][0]:6.0f} s  RSS {samples[-1][1]} KiB", flush=True)
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/api/v1/stats") as r:
                stats = json.load(r)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    at_1min = next(r for t, r in samples if t >= 60)
    end = samples[-1][1]
    frames = sum(s["frames"] for s in stats["sources"].values())
    print(f"{args.sources} sources, {frames} frames in {args.seconds} s "
          f"({frames / args.seconds:.1f} fps in all)")
    print(f"RSS at 1 min {at_1min} KiB, at the end {end} KiB: ratio {end / at_1min:.4f}")


if __name__ == "__main__":
    main()
