#!/usr/bin/env python3
"""The baseline rtinfer is measured against: the plain Python loop a user would write.

cv2.VideoCapture, letterbox, an onnxruntime session with default options, numpy decode and
per-class NMS, with the YOLOX conventions of ../shared/tools/reference_detect.py. Prints
FRAMES frames in SECONDS s = FPS fps (DETECTIONS detections), then, for the benchmark,
steady FRAMES_AFTER_THE_FIRST FIRST_FRAME_DONE_AT LAST_FRAME_DONE_AT (wall-clock seconds).

    python_loop.py VIDEO MODEL
"""
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort

STRIDES = (8, 16, 32)


def letterbox(img, in_w, in_h):
    """YOLOX: resize keeping the aspect, top-left anchored, pad 114; BGR 0..255 NCHW."""
    h, w = img.shape[:2]
    r = min(in_h / h, in_w / w)
    new_w, new_h = int(w * r), int(h * r)
    canvas = np.full((in_h, in_w, 3), 114, np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None].astype(np.float32)), r


def grid(in_w, in_h):
    cells, strides = [], []
    for s in STRIDES:
        yv, xv = np.meshgrid(np.arange(in_h // s), np.arange(in_w // s), indexing="ij")
        cells.append(np.stack((xv, yv), axis=2).reshape(-1, 2))
        strides.append(np.full((cells[-1].shape[0], 1), s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def nms(xyxy, scores, iou_thr):
    order = np.argsort(-scores, kind="stable")
    areas = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        xx1 = np.maximum(xyxy[i, 0], xyxy[rest, 0])
        yy1 = np.maximum(xyxy[i, 1], xyxy[rest, 1])
        xx2 = np.minimum(xyxy[i, 2], xyxy[rest, 2])
        yy2 = np.minimum(xyxy[i, 3], xyxy[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        order = rest[inter / (areas[i] + areas[rest] - inter + 1e-9) <= iou_thr]
    return keep


def detect(session, name, cells, strides, in_w, in_h, img, conf=0.25, iou=0.45):
    x, r = letterbox(img, in_w, in_h)
    pred = session.run(None, {name: x})[0][0]
    if float(np.max(pred[:, 2:4])) <= 50.0:  # raw grid output
        pred = pred.copy()
        pred[:, 0:2] = (pred[:, 0:2] + cells) * strides
        pred[:, 2:4] = np.exp(pred[:, 2:4]) * strides
    cls = pred[:, 5:]
    ids = cls.argmax(axis=1)
    scores = pred[:, 4] * cls[np.arange(len(cls)), ids]
    m = scores >= conf
    b, scores, ids = pred[m, :4], scores[m], ids[m]
    xyxy = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1) / r
    dets = []
    for c in np.unique(ids):
        idx = np.nonzero(ids == c)[0]
        dets += [(int(c), float(scores[idx[k]]), xyxy[idx[k]]) for k in nms(xyxy[idx], scores[idx], iou)]
    return dets


def main():
    video, model = sys.argv[1], sys.argv[2]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    in_h, in_w = inp.shape[2], inp.shape[3]
    cells, strides = grid(in_w, in_h)
    cap = cv2.VideoCapture(video)
    frames = detections = 0
    start = time.perf_counter()
    first = last = time.time()
    while True:
        ok, img = cap.read()
        if not ok:
            break
        detections += len(detect(session, inp.name, cells, strides, in_w, in_h, img))
        frames += 1
        last = time.time()
        if frames == 1:
            first = last
    secs = time.perf_counter() - start
    print(f"{frames} frames in {secs:.2f} s = {frames / secs:.1f} fps ({detections} detections)")
    print(f"steady {max(frames - 1, 0)} {first:.6f} {last:.6f}")


if __name__ == "__main__":
    main()
