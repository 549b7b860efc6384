"""The shared tolerance for comparing detections (../shared/data/README.md)."""


def iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def box(d):
    return (d["x"], d["y"], d["w"], d["h"])


def compare(expected, got, floor=0.35):
    """Every expected detection >= floor has a same-class match at IoU >= 0.8 with
    confidence within 0.1; every reported detection above floor matches an expected one."""
    problems = []
    for e in expected:
        if e["confidence"] < floor:
            continue
        if not any(g["class_id"] == e["class_id"] and iou(box(e), box(g)) >= 0.8
                   and abs(g["confidence"] - e["confidence"]) <= 0.1 for g in got):
            problems.append(f"missing {e}")
    for g in got:
        if g["confidence"] <= floor:
            continue
        if not any(g["class_id"] == e["class_id"] and iou(box(e), box(g)) >= 0.8 for e in expected):
            problems.append(f"extra {g}")
    return problems
