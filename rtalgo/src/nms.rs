//! Greedy non-maximum suppression per class, as YOLOX and Ultralytics do it.

use crate::decode::Candidate;

fn area(c: &Candidate) -> f32 {
    (c.x2 - c.x1) * (c.y2 - c.y1)
}

pub fn iou(a: &Candidate, b: &Candidate) -> f32 {
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = w * h;
    inter / (area(a) + area(b) - inter + 1e-9)
}

/// Keeps, best score first, each candidate that no better kept candidate of its class
/// overlaps with IoU above `iou_threshold`; at most `max` of them. `candidates` is sorted
/// in place and `keep` receives indices into it.
pub fn per_class(
    candidates: &mut [Candidate],
    iou_threshold: f32,
    max: usize,
    keep: &mut Vec<usize>,
) {
    keep.clear();
    // Stable, so equal scores keep their output order as in the reference.
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    for i in 0..candidates.len() {
        if keep.len() >= max {
            break;
        }
        let c = &candidates[i];
        let suppressed = keep.iter().any(|&k| {
            let kept = &candidates[k];
            kept.class == c.class && iou(kept, c) > iou_threshold
        });
        if !suppressed {
            keep.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(x: f32, score: f32, class: u32) -> Candidate {
        Candidate {
            x1: x,
            y1: 0.0,
            x2: x + 10.0,
            y2: 10.0,
            score,
            class,
        }
    }

    #[test]
    fn iou_values() {
        assert!((iou(&cand(0.0, 1.0, 0), &cand(0.0, 1.0, 0)) - 1.0).abs() < 1e-6);
        assert!((iou(&cand(0.0, 1.0, 0), &cand(5.0, 1.0, 0)) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&cand(0.0, 1.0, 0), &cand(20.0, 1.0, 0)), 0.0);
    }

    #[test]
    fn suppresses_within_a_class_only() {
        let mut c = vec![
            cand(1.0, 0.5, 0), // overlaps the best person: gone
            cand(0.0, 0.9, 0),
            cand(0.0, 0.8, 1), // same box, other class: kept
            cand(5.0, 0.7, 0), // IoU 1/3 with the best person: kept at 0.45
        ];
        let mut keep = Vec::new();
        per_class(&mut c, 0.45, 100, &mut keep);
        let kept: Vec<(u32, f32)> = keep.iter().map(|&i| (c[i].class, c[i].score)).collect();
        assert_eq!(kept, vec![(0, 0.9), (1, 0.8), (0, 0.7)]);
        // A lower IoU threshold suppresses the 1/3 overlap too; max limits the count.
        per_class(&mut c, 0.3, 100, &mut keep);
        assert_eq!(keep.len(), 2);
        per_class(&mut c, 0.45, 1, &mut keep);
        assert_eq!(keep.len(), 1);
    }
}
