//! Sources for analytics pipelines:
//!
//! * `rturisrcbin`: decodes any URI `uridecodebin` plays (files, RTSP, HTTP...) and, when the
//!   source fails, ends or stalls, rebuilds it with exponential backoff while the rest of the
//!   pipeline keeps running. Credentials in URIs never reach logs or messages.
//! * `rtwhepsrc`: receives and decodes video from a WHEP (WebRTC-HTTP Egress) server;
//!   `whep://` URIs, so `rturisrcbin uri=whep://...` reconnects it.

use gst::glib;

mod reconnect;
mod rturisrcbin;
mod rtwhepsrc;
mod uri;

/// What `rturisrcbin` refuses at once (no element for the scheme; a missing or empty local
/// file), for applications that check URIs before building a pipeline.
pub use uri::{UriError, check_uri};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    rturisrcbin::register(plugin)?;
    rtwhepsrc::register(plugin)
}

gst::plugin_define!(
    rtsrc,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
