#!/usr/bin/env python3
"""Scores rttrack against Roboflow's ByteTrack (PyPI `trackers`) on published ground truth.

The ground truth is TUD-Campus (640x480, 71 frames at 25 fps) as shipped in PyPI's
`motmetrics` package. Noisy detections are made from it with a fixed seed (jittered boxes,
missed objects, false positives, random confidences) and written as rtjsonenc lines; then

* rttrack runs on them in a real pipeline:
  videotestsrc ! rtdetreplay location=dets.jsonl ! rttrack ! rtjsonenc ! filesink
* `trackers.ByteTrackTracker` runs on the same detections, with its defaults and with every
  configuration of a grid over its thresholds (the best one is reported),

and both are scored with the `trackers` evaluator (TrackEval's CLEAR and Identity metrics):
MOTA and IDF1. Needs numpy and trackers (`pip install trackers`, `pip install --no-deps
motmetrics` for the data). Prints a table; `--json FILE` writes the figures.

    python scripts/mot_eval.py [--seeds 0 1 2] [--plugins target/release] [--json out.json]
"""
import argparse
import importlib.util
import itertools
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
WIDTH, HEIGHT, FPS = 640, 480, 25

# rttrack: the defaults, the IoU-only mode, and a grid for the best configuration.
RTTRACK_CONFIGS = {"rttrack (defaults)": "", "rttrack mode=iou": "mode=iou"}
RTTRACK_GRID = {
    "high-threshold": [0.4, 0.5, 0.6],
    "new-track-threshold": [0.5, 0.6, 0.7],
    "match-iou": [0.1, 0.2, 0.3],
    "probation": [1, 2, 3],
}

# trackers' ByteTrack: the defaults, and a grid around them for the best configuration.
TRACKERS_GRID = {
    "track_activation_threshold": [0.5, 0.6, 0.7],
    "high_conf_det_threshold": [0.4, 0.5, 0.6],
    "minimum_iou_threshold": [0.1, 0.2, 0.3],
    "minimum_consecutive_frames": [1, 2, 3],
    "lost_track_buffer": [30, 60],
}


def ground_truth_path():
    spec = importlib.util.find_spec("motmetrics")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("motmetrics is not installed (pip install --no-deps motmetrics)")
    path = pathlib.Path(spec.submodule_search_locations[0]) / "data" / "TUD-Campus" / "gt.txt"
    if not path.exists():
        sys.exit(f"{path} missing")
    return path


def load_gt(path):
    """{frame (1-based): [(id, x, y, w, h)]}"""
    frames = {}
    for row in np.loadtxt(path, delimiter=",", ndmin=2):
        frames.setdefault(int(row[0]), []).append((int(row[1]), *row[2:6]))
    return frames


def noisy_detections(gt, seed):
    """{frame: [(x, y, w, h, confidence)]}: every ground-truth box jittered (5 % of its size),
    missed with probability 0.1; confidences mostly high, a fifth of them low (0.15-0.5, as
    under occlusion); about one false positive per frame (confidence 0.1-0.65)."""
    rng = np.random.default_rng(seed)
    frames = {}
    for f in range(1, max(gt) + 1):
        dets = []
        for _, x, y, w, h in gt.get(f, []):
            if rng.random() < 0.1:
                continue
            jx, jy = rng.normal(0, 0.05 * w), rng.normal(0, 0.05 * h)
            sw, sh = 1 + rng.normal(0, 0.05), 1 + rng.normal(0, 0.05)
            conf = rng.uniform(0.15, 0.5) if rng.random() < 0.2 else rng.uniform(0.5, 1.0)
            dets.append((x + jx, y + jy, w * sw, h * sh, conf))
        for _ in range(rng.poisson(1.0)):
            w, h = rng.uniform(40, 120), rng.uniform(100, 280)
            x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
            dets.append((x, y, w, h, rng.uniform(0.1, 0.65)))
        frames[f] = dets
    return frames


def write_jsonl(frames, path):
    with open(path, "w") as out:
        for f in sorted(frames):
            objects = [{"class_id": 0, "label": "person", "confidence": round(c, 4),
                        "x": round(x, 2), "y": round(y, 2), "w": round(w, 2), "h": round(h, 2),
                        "track_id": None} for x, y, w, h, c in frames[f]]
            out.write(json.dumps({"source_id": 0, "frame": f - 1, "pts": None, "width": WIDTH,
                                  "height": HEIGHT, "stale": False, "objects": objects}) + "\n")


def run_rttrack(dets_path, props, plugins, frames):
    """The real pipeline; returns the MOT rows of the tracked objects."""
    tracks = dets_path.with_suffix(".tracks.jsonl")
    line = (f"videotestsrc num-buffers={frames} pattern=black ! "
            f"video/x-raw,width={WIDTH},height={HEIGHT},framerate={FPS}/1 ! "
            f"rtdetreplay location={dets_path} ! rttrack {props} ! rtjsonenc ! "
            f"filesink location={tracks}")
    env = dict(os.environ, GST_PLUGIN_PATH=str(plugins))
    done = subprocess.run(["gst-launch-1.0", "-q", *line.split()], env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        sys.exit(f"pipeline failed: {line}\n{done.stdout}{done.stderr}")
    rows = []
    for text in tracks.read_text().splitlines():
        doc = json.loads(text)
        for o in doc["objects"]:
            if o["track_id"] is not None:
                rows.append((doc["frame"] + 1, o["track_id"], o["x"], o["y"], o["w"], o["h"]))
    return rows


def run_trackers(frames, params):
    import supervision as sv
    from trackers import ByteTrackTracker

    tracker = ByteTrackTracker(frame_rate=FPS, **params)
    rows = []
    for f in sorted(frames):
        d = np.array(frames[f], dtype=float).reshape(-1, 5)
        xyxy = np.stack([d[:, 0], d[:, 1], d[:, 0] + d[:, 2], d[:, 1] + d[:, 3]], axis=1)
        out = tracker.update(sv.Detections(xyxy=xyxy, confidence=d[:, 4],
                                           class_id=np.zeros(len(d), dtype=int)))
        for (x1, y1, x2, y2), tid in zip(out.xyxy, out.tracker_id):
            if tid >= 0:
                rows.append((f, int(tid), x1, y1, x2 - x1, y2 - y1))
    return rows


def score(gt_path, rows, path):
    from trackers.eval import evaluate_mot_sequence

    with open(path, "w") as out:
        for f, tid, x, y, w, h in rows:
            out.write(f"{f},{tid},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,-1,-1,-1\n")
    r = evaluate_mot_sequence(gt_path, path, metrics=["CLEAR", "Identity"])
    return {"MOTA": float(r.CLEAR.MOTA), "IDF1": float(r.Identity.IDF1),
            "IDSW": int(r.CLEAR.IDSW)}


def evaluate(seed, plugins, work):
    gt = load_gt(ground_truth_path())
    # MOT15 files leave the class out (-1); the evaluator (like TrackEval) scores class 1.
    gt_path = work / "gt.txt"
    gt_path.write_text("".join(f"{f},{i},{x},{y},{w},{h},1,1,1\n"
                               for f in sorted(gt) for i, x, y, w, h in gt[f]))
    frames = noisy_detections(gt, seed)
    dets_path = work / f"dets-{seed}.jsonl"
    write_jsonl(frames, dets_path)
    results = {}
    mot_file = work / "tracks.txt"

    def best_of(grid, run):
        best = None
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            s = score(gt_path, run(params), mot_file)
            if best is None or s["MOTA"] + s["IDF1"] > best["MOTA"] + best["IDF1"]:
                best = {**s, "params": params}
        return best

    def rttrack(props):
        return run_rttrack(dets_path, props, plugins, max(gt))

    for name, props in RTTRACK_CONFIGS.items():
        results[name] = score(gt_path, rttrack(props), mot_file)
    results["rttrack (best of grid)"] = best_of(
        RTTRACK_GRID, lambda p: rttrack(" ".join(f"{k}={v}" for k, v in p.items())))
    results["trackers ByteTrack (defaults)"] = score(gt_path, run_trackers(frames, {}), mot_file)
    results["trackers ByteTrack (best of grid)"] = best_of(
        TRACKERS_GRID, lambda p: run_trackers(frames, p))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--plugins", type=pathlib.Path, default=REPO / "target" / "release")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    all_results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            all_results[seed] = evaluate(seed, args.plugins, pathlib.Path(tmp))
    print(f"{'tracker':36} {'seed':>4} {'MOTA':>7} {'IDF1':>7} {'IDSW':>5}")
    for seed, results in all_results.items():
        for name, s in results.items():
            print(f"{name:36} {seed:>4} {s['MOTA']:7.3f} {s['IDF1']:7.3f} {s['IDSW']:5d}")
            if "params" in s:
                print(f"{'':36}      {s['params']}")
    if len(args.seeds) > 1:
        names = list(next(iter(all_results.values())))
        for name in names:
            mota = np.mean([r[name]["MOTA"] for r in all_results.values()])
            idf1 = np.mean([r[name]["IDF1"] for r in all_results.values()])
            print(f"{name:36} mean {mota:7.3f} {idf1:7.3f}")
    if args.json:
        args.json.write_text(json.dumps(all_results, indent=1))


if __name__ == "__main__":
    main()
