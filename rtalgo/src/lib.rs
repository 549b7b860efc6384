//! Video-analytics algorithms with no GStreamer in them, so that they can be unit-tested and
//! benchmarked on their own and reused outside a pipeline. The elements wrap them.
//!
//! * [`spec`], [`letterbox`], [`tensor`]: what a model wants as input, where a frame lands
//!   inside its tensor, and the tensor's plain types (rtpreprocess and rtinfer convert frames
//!   with them; `rtmeta` carries them).
//! * [`decode`], [`nms`]: YOLO outputs (YOLOX, YOLOv5, Ultralytics) to boxes, and per-class
//!   non-maximum suppression.
//! * [`track`]: ByteTrack-style multi-object tracking ([`track::Tracker`]).
//! * [`kalman`]: the constant-velocity box filter that the tracker predicts with.
//! * [`assign`]: minimum-cost (Hungarian) and greedy assignment of tracks to detections.
//! * [`geometry`]: boxes and their overlap.
//! * [`draw`]: drawing on frames in place (boxes, labels with a real font, pixelation).
//! * [`time`]: wall-clock times as UTC text.
//! * [`device`]: the device names that `device` properties and configs take.

pub mod assign;
pub mod decode;
pub mod device;
pub mod draw;
pub mod geometry;
pub mod kalman;
pub mod letterbox;
pub mod nms;
pub mod spec;
pub mod tensor;
pub mod time;
pub mod track;
