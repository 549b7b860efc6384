//! GStreamer elements over `RtDetectionMeta`:
//! * `rttrack`: multi-object tracking (ByteTrack-style) that writes each object's `track-id`;
//! * `rtdetreplay`: attaches detections recorded by `rtjsonenc` to the frames of a video, so
//!   tracking, rules and drawing can be re-run without the model.
//!
//! The tracking algorithm itself is in the GStreamer-free `rtalgo` crate.

use gst::glib;

mod rtdetreplay;
mod rttrack;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    rtmeta::register();
    rttrack::register(plugin)?;
    rtdetreplay::register(plugin)
}

gst::plugin_define!(
    rttrack,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
