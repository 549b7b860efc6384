//! GStreamer elements for object detection with YOLO-family ONNX models:
//!
//! * `rtpreprocess`: frame to model input tensor, attached as `RtTensorMeta`.
//! * `rtinfer`: runs the model, decodes YOLO outputs, NMS, attaches `RtDetectionMeta`.
//! * `rtjsonenc`: detections to JSON lines.
#![allow(clippy::non_send_fields_in_send_ty)]

use gst::glib;

pub mod backend;
pub mod convert;
pub mod cuda;
pub mod decode;
pub mod device;
pub mod labels;
pub mod spec;
mod stats;
pub mod tensorize;

// The GStreamer-free pre- and post-processing, under the paths the elements have always used.
pub use rtalgo::{letterbox, nms};

mod rtinfer;
mod rtjsonenc;
mod rtpreprocess;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    rtmeta::register();
    rtpreprocess::register(plugin)?;
    rtinfer::register(plugin)?;
    rtjsonenc::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    rtinfer,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
