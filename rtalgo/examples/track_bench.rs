//! Per-frame cost of the tracker: 50 moving objects (with jitter, dips in confidence and
//! misses) for 3000 frames at 30 fps, in both modes.
//!
//!     cargo run --release -p rtalgo --example track_bench [objects]

use rtalgo::geometry::Rect;
use rtalgo::track::{Config, Detection, Mode, Tracker};
use std::time::Instant;

fn main() {
    let objects: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let frames = 3000;
    // A fixed linear congruential generator: the same scene every run.
    let mut seed = 7u64;
    let mut rand = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    let starts: Vec<(f32, f32, f32, f32)> = (0..objects)
        .map(|_| {
            (
                rand() * 1800.0,
                rand() * 1000.0,
                rand() * 4.0 - 2.0,
                rand() * 4.0 - 2.0,
            )
        })
        .collect();
    let mut scene: Vec<Vec<Detection>> = Vec::with_capacity(frames);
    for f in 0..frames {
        let mut dets = Vec::with_capacity(objects);
        for &(x, y, vx, vy) in &starts {
            if rand() < 0.05 {
                continue; // missed
            }
            dets.push(Detection {
                rect: Rect::new(
                    (x + vx * f as f32).rem_euclid(1800.0) + rand() * 2.0,
                    (y + vy * f as f32).rem_euclid(1000.0) + rand() * 2.0,
                    40.0,
                    80.0,
                ),
                confidence: 0.2 + 0.8 * rand(),
                class_id: 0,
            });
        }
        scene.push(dets);
    }
    for mode in [Mode::ByteTrack, Mode::Iou] {
        let mut tracker = Tracker::new(Config {
            mode,
            ..Config::default()
        });
        let started = Instant::now();
        let mut tracked = 0;
        for (f, dets) in scene.iter().enumerate() {
            tracked += tracker
                .update(f as f64 / 30.0, dets)
                .iter()
                .flatten()
                .count();
        }
        let per_frame = started.elapsed().as_secs_f64() * 1e3 / frames as f64;
        println!(
            "{mode:?}: {objects} objects, {per_frame:.4} ms per frame ({:.0} tracked per frame, {} tracks started)",
            tracked as f64 / frames as f64,
            tracker.counts().started
        );
    }
}
