//! Inference statistics: counters plus mean and p95 of recent inference times and frame
//! latencies, with no allocation per frame.

use std::time::Duration;

/// Recent values kept for a percentile.
const WINDOW: usize = 512;

/// Upper bounds (ms) of the histogram buckets of all values (Prometheus-style `le`; one more
/// bucket holds what is above the last bound).
pub const BUCKET_BOUNDS_MS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// The mean of all values, a histogram of all values and the 95th percentile of the last
/// `WINDOW`.
#[derive(Clone)]
pub struct Window {
    count: u64,
    total: f64,
    recent: [f32; WINDOW],
    buckets: [u64; BUCKET_BOUNDS_MS.len() + 1],
}

impl Default for Window {
    fn default() -> Self {
        Window {
            count: 0,
            total: 0.0,
            recent: [0.0; WINDOW],
            buckets: [0; BUCKET_BOUNDS_MS.len() + 1],
        }
    }
}

impl Window {
    pub fn record(&mut self, v: f64) {
        self.recent[(self.count % WINDOW as u64) as usize] = v as f32;
        self.count += 1;
        self.total += v;
        let bucket = BUCKET_BOUNDS_MS.partition_point(|&b| b < v);
        self.buckets[bucket] += 1;
    }

    /// How many values fell in each bucket (not cumulative; the last is above every bound).
    pub fn buckets(&self) -> &[u64] {
        &self.buckets
    }

    pub fn total(&self) -> f64 {
        self.total
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total / self.count as f64
        }
    }

    /// 95th percentile of the last values (nearest rank).
    pub fn p95(&self) -> f64 {
        let n = (self.count as usize).min(WINDOW);
        if n == 0 {
            return 0.0;
        }
        let mut sorted = self.recent;
        let sorted = &mut sorted[..n];
        let rank = ((n as f64 * 0.95).ceil() as usize).clamp(1, n) - 1;
        let (_, v, _) = sorted.select_nth_unstable_by(rank, f32::total_cmp);
        *v as f64
    }
}

#[derive(Clone, Default)]
pub struct Stats {
    /// Frames submitted (inferred, skipped by `interval` or by `max-latency`).
    pub frames: u64,
    pub inferences: u64,
    pub detections: u64,
    pub batches: u64,
    /// Runs of the model: one per batch.
    pub model_runs: u64,
    /// Frames not inferred because they would have waited longer than `max-latency`.
    pub skipped: u64,
    /// Model requests (workers).
    pub requests: u64,
    /// Request-seconds busy, over `busy_span_seconds`.
    pub busy_seconds: f64,
    pub busy_span_seconds: f64,
    /// Total milliseconds inferred frames waited in the queue before their run started.
    pub queue_ms: f64,
    /// Inference time per frame (ms).
    pub inference: Window,
    /// Arrival at rtinfer to leaving it (ms), per frame.
    pub latency: Window,
}

impl Stats {
    pub fn record_inference(&mut self, ms: f64, detections: usize) {
        self.inferences += 1;
        self.detections += detections as u64;
        self.inference.record(ms);
    }

    pub fn record_latency(&mut self, d: Duration) {
        self.latency.record(d.as_secs_f64() * 1e3);
    }

    pub fn mean_ms(&self) -> f64 {
        self.inference.mean()
    }

    pub fn p95_ms(&self) -> f64 {
        self.inference.p95()
    }

    pub fn to_structure(&self, name: &str) -> gst::Structure {
        let per = |total: f64, n: u64| if n == 0 { 0.0 } else { total / n as f64 };
        gst::Structure::builder(name)
            .field("frames", self.frames)
            .field("inferences", self.inferences)
            .field("detections", self.detections)
            .field("mean-inference-ms", self.mean_ms())
            .field("p95-inference-ms", self.p95_ms())
            .field("batches", self.batches)
            .field("model-runs", self.model_runs)
            .field("mean-batch-size", per(self.inferences as f64, self.batches))
            .field("requests", self.requests as u32)
            .field(
                "mean-busy-requests",
                if self.busy_span_seconds > 0.0 {
                    self.busy_seconds / self.busy_span_seconds
                } else {
                    0.0
                },
            )
            .field("mean-queue-ms", per(self.queue_ms, self.inferences))
            .field("mean-latency-ms", self.latency.mean())
            .field("p95-latency-ms", self.latency.p95())
            .field("skipped", self.skipped)
            .field("inference-ms-sum", self.inference.total())
            .field(
                "inference-ms-bounds",
                gst::Array::new(BUCKET_BOUNDS_MS.iter().copied()),
            )
            .field(
                "inference-ms-buckets",
                gst::Array::new(self.inference.buckets().iter().copied()),
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

    #[test]
    fn histogram_counts_every_value_in_its_bucket() {
        let mut w = Window::default();
        for v in [0.5, 1.0, 1.5, 9.0, 10.0, 10.5, 7000.0] {
            w.record(v);
        }
        let b = w.buckets();
        // le=1: 0.5 and 1.0; le=2: 1.5; le=10: 9 and 10; le=20: 10.5; above 5000: 7000.
        assert_eq!((b[0], b[1], b[2], b[3], b[4]), (2, 1, 0, 2, 1));
        assert_eq!(b[BUCKET_BOUNDS_MS.len()], 1);
        assert_eq!(b.iter().sum::<u64>(), 7);
    }
}
