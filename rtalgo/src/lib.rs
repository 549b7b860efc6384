//! Video-analytics algorithms with no GStreamer in them, so that they can be unit-tested and
//! benchmarked on their own and reused outside a pipeline. The elements wrap them.
//!
//! * [`track`]: ByteTrack-style multi-object tracking ([`track::Tracker`]).
//! * [`kalman`]: the constant-velocity box filter that the tracker predicts with.
//! * [`assign`]: minimum-cost (Hungarian) and greedy assignment of tracks to detections.
//! * [`geometry`]: boxes and their overlap.
//! * [`draw`]: drawing on frames in place (boxes, labels with a real font, pixelation).
//! * [`time`]: wall-clock times as UTC text.
//! * [`device`]: the device names that `device` properties and configs take.

pub mod assign;
pub mod device;
pub mod draw;
pub mod geometry;
pub mod kalman;
pub mod time;
pub mod track;
