//! Helpers the project's tests and benchmarks share, so each is written once: where the
//! shared models and data are, a free loopback port, waiting for a condition, and the
//! process's resident memory. A dev-dependency only; no GStreamer in it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared models and data: `$RT_SHARED`, else `../shared` beside the repository.
pub fn shared() -> PathBuf {
    std::env::var_os("RT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"))
}

/// The path of a shared model, which must exist.
pub fn model(name: &str) -> String {
    let p = shared().join("models").join(name);
    assert!(
        p.exists(),
        "{} is missing: set RT_SHARED to the shared folder",
        p.display()
    );
    p.display().to_string()
}

/// A TCP port on loopback that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Polls `ok` every 50 ms until it holds; panics naming `what` after `secs` seconds.
pub fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// This process's resident memory in KiB (0 where /proc cannot tell).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Plays `pipeline` until its first error or EOS (30 s at most), then stops it; the error, if
/// it ended with one.
pub fn first_error(pipeline: &gst::Pipeline) -> Option<gst::glib::Error> {
    use gst::prelude::*;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let _ = pipeline.set_state(gst::State::Playing);
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[gst::MessageType::Error, gst::MessageType::Eos],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(e)) => Some(e.error()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_of_this_process() {
        assert!(super::rss_kib() > 0);
        let port = super::free_port();
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        let mut n = 0;
        super::wait_for("three polls", 5, || {
            n += 1;
            n == 3
        });
    }
}
