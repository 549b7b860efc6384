//! GStreamer element `rtrecord`: keeps the last seconds of an encoded stream and writes MP4
//! clips around triggers (rtalert's alerts upstream, the `record` action signal, or the
//! `rt-record` query), from `pre-capture` before to `post-capture` after.
//!
//! * [`recorder`]: the pre-capture ring and the clip spans, without GStreamer.
//! * [`clip`]: one clip being written (`appsrc ! mp4mux ! filesink`).
//! * [`retention`]: removing the oldest clips.

use gst::glib;

pub mod clip;
pub mod recorder;
pub mod retention;
mod rtrecord;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    rtrecord::register(plugin)
}

gst::plugin_define!(
    rtrecord,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
