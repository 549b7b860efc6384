//! Typed access to the metadata that the rt analytics plugins attach to video buffers.
//!
//! Both kinds are `GstCustomMeta` (GStreamer 1.20+), so C, Python and Rust apps can read them
//! with plain GStreamer API and without this crate:
//!
//! * `RtDetectionMeta`: the detections of one frame (see [`Detections`]).
//! * `RtTensorMeta`: the model input tensor made by `rtpreprocess` (see [`TensorMeta`]).
//! * `RtRegionMeta`: rtalert's zones and lines and whether their rules hold (see [`Regions`]).
//!
//! [`roi`] also writes detections as standard `GstVideoRegionOfInterestMeta`s, and [`labels`]
//! is the sticky event with the labels the detectors upstream can produce. [`record`] is the
//! query that asks a recorder downstream (`rtrecord`) for a clip around a moment.
//!
//! Call [`register`] once after `gst::init()` before using them from an app that has not
//! loaded one of the plugins yet (loading either plugin registers them too).

mod detection;
pub mod labels;
pub mod mask;
pub mod record;
mod region;
pub mod roi;
mod tensor;
mod transform;

pub use detection::{Detection, Detections, JsonError};
pub use region::{Region, RegionKind, Regions};
pub use tensor::{ChannelOrder, DType, Layout, TensorMeta, Transform};
pub use transform::Scale;

/// Name of the custom meta (and of its structure) carrying the detections of a frame.
pub const DETECTION_META: &str = "RtDetectionMeta";
/// Name of the custom meta (and of its structure) carrying a model input tensor.
pub const TENSOR_META: &str = "RtTensorMeta";
/// Name of the custom meta carrying rtalert's zones and lines and their state.
pub const REGION_META: &str = "RtRegionMeta";

/// Takes `GstVideoCropMeta` out of an ALLOCATION query on its way upstream. The elements
/// that read pixels (rtpreprocess, rtinfer, rtoverlay) map whole frames; were a sink's
/// support for the crop meta passed on, `videocrop` upstream would crop by attaching one
/// instead of cropping, and they would work on the uncropped frame.
pub fn refuse_crop_meta(query: &mut gst::query::Allocation) {
    while let Some(i) = query.find_allocation_meta::<gst_video::VideoCropMeta>() {
        query.remove_nth_allocation_meta(i);
    }
}

/// Registers the custom metas with GStreamer. Safe to call any number of times.
pub fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Detections and regions are positions in the picture: copied and scaled with
        // it, dropped by flips and crops (see `transform`). The tensor has no tags: it says
        // itself which frame it was made for, and rtinfer checks that.
        transform::register_positional();
        if !gst::meta::CustomMeta::is_registered(TENSOR_META) {
            gst::meta::CustomMeta::register(TENSOR_META, &[]);
        }
    });
}
