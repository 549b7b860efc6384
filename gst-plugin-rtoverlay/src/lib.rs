//! GStreamer element `rtoverlay`: draws the detections of `RtDetectionMeta` on the frames, in
//! place and in the frame's own format. The drawing itself is `rtalgo::draw`.

use gst::glib;

mod rtoverlay;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    rtmeta::register();
    rtoverlay::register(plugin)
}

gst::plugin_define!(
    rtoverlay,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
