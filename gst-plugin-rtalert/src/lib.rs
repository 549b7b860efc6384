//! GStreamer element `rtalert`: rules over detections, with throttling that never loses an
//! alert silently, and alerts to the bus, stdout, JSON-lines files, webhooks and MQTT.

use gst::glib;

pub mod alert;
pub mod alerter;
pub mod engine;
pub mod outputs;
mod rtalert;
pub mod rules;
pub mod snapshot;
pub mod throttle;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    rtmeta::register();
    rtalert::register(plugin)
}

gst::plugin_define!(
    rtalert,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
