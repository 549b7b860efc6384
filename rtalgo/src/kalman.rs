//! A constant-velocity Kalman filter on a box, in stream time.
//!
//! The state is the box centre and size with their velocities (per second). As in ByteTrack
//! (and SORT before it) every noise is diagonal and scales with the box height, so the four
//! coordinates never couple: each is an independent 1-D filter with a 2x2 covariance, which
//! is exact and about ten times cheaper than the 8x8 matrices of the textbook form.
//!
//! ByteTrack's noise is per frame at 30 fps; here it scales with the time step, so a track
//! behaves the same when `interval` skips frames or the frame rate changes.

use crate::geometry::Rect;

/// The frame period that ByteTrack's noise weights are tuned for.
const REFERENCE_PERIOD: f32 = 1.0 / 30.0;
/// Position noise, relative to the box height (ByteTrack's `std_weight_position`).
const POSITION_WEIGHT: f32 = 1.0 / 20.0;
/// Velocity noise per reference period, relative to the box height.
const VELOCITY_WEIGHT: f32 = 1.0 / 160.0;

/// One coordinate and its velocity.
#[derive(Clone, Copy, Debug)]
struct Axis {
    pos: f32,
    vel: f32,
    /// Covariance [[p00, p01], [p01, p11]].
    p00: f32,
    p01: f32,
    p11: f32,
}

impl Axis {
    fn new(pos: f32, pos_std: f32, vel_std: f32) -> Self {
        Axis {
            pos,
            vel: 0.0,
            p00: pos_std * pos_std,
            p01: 0.0,
            p11: vel_std * vel_std,
        }
    }

    /// x <- F x, P <- F P Fᵀ + Q with F = [[1, dt], [0, 1]].
    fn predict(&mut self, dt: f32, q_pos: f32, q_vel: f32) {
        self.pos += self.vel * dt;
        self.p00 += dt * (2.0 * self.p01 + dt * self.p11) + q_pos;
        self.p01 += dt * self.p11;
        self.p11 += q_vel;
    }

    /// The measurement z of the position, with variance r.
    fn update(&mut self, z: f32, r: f32) {
        let s = self.p00 + r;
        let k0 = self.p00 / s;
        let k1 = self.p01 / s;
        let innovation = z - self.pos;
        self.pos += k0 * innovation;
        self.vel += k1 * innovation;
        let (p00, p01, p11) = (self.p00, self.p01, self.p11);
        self.p00 = (1.0 - k0) * p00;
        self.p01 = (1.0 - k0) * p01;
        self.p11 = p11 - k1 * p01;
    }
}

/// The filter of one track: centre x, centre y, width and height.
#[derive(Clone, Copy, Debug)]
pub struct BoxFilter {
    axes: [Axis; 4],
}

fn measurement(r: &Rect) -> [f32; 4] {
    let (cx, cy) = r.center();
    [cx, cy, r.w, r.h]
}

impl BoxFilter {
    /// A filter at `r`, at rest, with ByteTrack's initial uncertainty.
    pub fn new(r: &Rect) -> Self {
        let h = r.h.max(1.0);
        let pos_std = 2.0 * POSITION_WEIGHT * h;
        let vel_std = 10.0 * VELOCITY_WEIGHT * h / REFERENCE_PERIOD;
        let z = measurement(r);
        BoxFilter {
            axes: z.map(|v| Axis::new(v, pos_std, vel_std)),
        }
    }

    /// Moves the state `dt` seconds forward. `hold_size` stops the size from changing, as
    /// ByteTrack does for tracks that lost their object.
    pub fn predict(&mut self, dt: f32, hold_size: bool) {
        if dt <= 0.0 {
            return;
        }
        if hold_size {
            self.axes[2].vel = 0.0;
            self.axes[3].vel = 0.0;
        }
        let h = self.axes[3].pos.max(1.0);
        let steps = dt / REFERENCE_PERIOD;
        let q_pos = (POSITION_WEIGHT * h).powi(2) * steps;
        let q_vel = (VELOCITY_WEIGHT * h / REFERENCE_PERIOD).powi(2) * steps;
        for a in &mut self.axes {
            a.predict(dt, q_pos, q_vel);
        }
    }

    /// Corrects the state with a detected box.
    pub fn update(&mut self, r: &Rect) {
        let h = self.axes[3].pos.max(1.0);
        let var = (POSITION_WEIGHT * h).powi(2);
        for (a, z) in self.axes.iter_mut().zip(measurement(r)) {
            a.update(z, var);
        }
    }

    /// The box now.
    pub fn rect(&self) -> Rect {
        self.rect_after(0.0)
    }

    /// The box `dt` seconds from now, without changing the state.
    pub fn rect_after(&self, dt: f32) -> Rect {
        let [cx, cy, w, h] = self.axes.map(|a| a.pos + a.vel * dt);
        let (w, h) = (w.max(0.0), h.max(0.0));
        Rect::new(cx - w / 2.0, cy - h / 2.0, w, h)
    }

    /// The velocity of the centre, pixels per second.
    pub fn velocity(&self) -> (f32, f32) {
        (self.axes[0].vel, self.axes[1].vel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_constant_velocity_and_extrapolates_it() {
        // 60 px/s to the right and 30 px/s down, observed at 30 fps for one second.
        let at = |t: f32| Rect::new(100.0 + 60.0 * t, 50.0 + 30.0 * t, 40.0, 80.0);
        let mut f = BoxFilter::new(&at(0.0));
        for k in 1..=30 {
            f.predict(1.0 / 30.0, false);
            f.update(&at(k as f32 / 30.0));
        }
        let (vx, vy) = f.velocity();
        assert!(
            (vx - 60.0).abs() < 3.0 && (vy - 30.0).abs() < 3.0,
            "velocity {vx}, {vy}"
        );
        let ahead = f.rect_after(0.5);
        assert!(ahead.iou(&at(1.5)) > 0.9, "{ahead:?} vs {:?}", at(1.5));
        assert_eq!(
            f.rect_after(0.5),
            ahead,
            "rect_after leaves the state alone"
        );
    }

    #[test]
    fn one_long_step_matches_many_short_ones() {
        // The same motion seen at 30 fps and at 5 fps ends in the same place: noise and
        // motion are in seconds, not frames.
        let at = |t: f32| Rect::new(10.0 + 90.0 * t, 20.0, 30.0, 60.0);
        let run = |fps: u32| {
            let mut f = BoxFilter::new(&at(0.0));
            for k in 1..=2 * fps {
                f.predict(1.0 / fps as f32, false);
                f.update(&at(k as f32 / fps as f32));
            }
            f.rect_after(1.0)
        };
        let (fast, slow) = (run(30), run(5));
        assert!(fast.iou(&slow) > 0.9, "{fast:?} vs {slow:?}");
        assert!(fast.iou(&at(3.0)) > 0.9);
    }

    #[test]
    fn follows_a_jump_in_size_and_holds_size_when_asked() {
        let mut f = BoxFilter::new(&Rect::new(0.0, 0.0, 20.0, 40.0));
        for _ in 0..10 {
            f.predict(1.0 / 30.0, false);
            f.update(&Rect::new(0.0, 0.0, 40.0, 80.0));
        }
        let r = f.rect();
        assert!(
            (r.w - 40.0).abs() < 4.0 && (r.h - 80.0).abs() < 8.0,
            "{r:?}"
        );
        f.predict(1.0, true);
        let held = f.rect();
        assert!((held.h - r.h).abs() < 1e-3, "{held:?} vs {r:?}");
    }
}
