//! Inference statistics: counters plus mean and p95 of recent inference times, with no
//! allocation per frame.

/// Inference times kept for the percentile.
const WINDOW: usize = 512;

#[derive(Clone)]
pub struct Stats {
    pub frames: u64,
    pub inferences: u64,
    pub detections: u64,
    pub batches: u64,
    /// Runs of the model: one per batch for dynamic-batch models, one per frame otherwise.
    pub model_runs: u64,
    total_ms: f64,
    recent: [f32; WINDOW],
    next: usize,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            frames: 0,
            inferences: 0,
            detections: 0,
            batches: 0,
            model_runs: 0,
            total_ms: 0.0,
            recent: [0.0; WINDOW],
            next: 0,
        }
    }
}

impl Stats {
    pub fn record_inference(&mut self, ms: f64, detections: usize) {
        self.inferences += 1;
        self.detections += detections as u64;
        self.total_ms += ms;
        self.recent[self.next % WINDOW] = ms as f32;
        self.next += 1;
    }

    pub fn mean_ms(&self) -> f64 {
        if self.inferences == 0 {
            0.0
        } else {
            self.total_ms / self.inferences as f64
        }
    }

    /// 95th percentile of the last inference times (nearest rank).
    pub fn p95_ms(&self) -> f64 {
        let n = self.next.min(WINDOW);
        if n == 0 {
            return 0.0;
        }
        let mut sorted = self.recent;
        let sorted = &mut sorted[..n];
        let rank = ((n as f64 * 0.95).ceil() as usize).clamp(1, n) - 1;
        let (_, v, _) = sorted.select_nth_unstable_by(rank, f32::total_cmp);
        *v as f64
    }

    pub fn to_structure(&self, name: &str) -> gst::Structure {
        gst::Structure::builder(name)
            .field("frames", self.frames)
            .field("inferences", self.inferences)
            .field("detections", self.detections)
            .field("mean-inference-ms", self.mean_ms())
            .field("p95-inference-ms", self.p95_ms())
            .field("batches", self.batches)
            .field("model-runs", self.model_runs)
            .field(
                "mean-batch-size",
                if self.batches == 0 {
                    0.0
                } else {
                    self.inferences as f64 / self.batches as f64
                },
            )
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_p95() {
        let mut s = Stats::default();
        assert_eq!((s.mean_ms(), s.p95_ms()), (0.0, 0.0));
        for i in 1..=100 {
            s.record_inference(i as f64, 1);
        }
        assert_eq!(s.mean_ms(), 50.5);
        assert_eq!(s.p95_ms(), 95.0);
        assert_eq!((s.inferences, s.detections), (100, 100));
        // Only the last WINDOW times count for the percentile.
        for _ in 0..WINDOW {
            s.record_inference(1.0, 0);
        }
        assert_eq!(s.p95_ms(), 1.0);
    }
}
