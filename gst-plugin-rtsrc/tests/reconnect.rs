//! rturisrcbin against a real RTSP server on loopback: plays over TCP and UDP, and recovers
//! every time the server is killed and restarted, while another source in the same
//! pipeline keeps flowing and the pipeline never goes to ERROR. Passwords never show.

use gst::prelude::*;
use rttest::{free_port, rss_kib, wait_for};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VIDEO: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstrtsrc::plugin_register_static().unwrap();
    });
}

struct Server(Child);

impl Server {
    fn start(port: u16) -> Server {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/servers/rtsp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(VIDEO)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the RTSP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "RTSP server did not start (gir1.2-gst-rtsp-server-1.0 installed?)"
        );
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every message the pipeline posts, as text, collected on a thread.
/// The kinds of error rturisrcbin posts, as a tag in the collected text.
fn kind(e: &gst::glib::Error) -> &'static str {
    if e.matches(gst::CoreError::MissingPlugin) {
        "[missing-plugin]"
    } else if e.matches(gst::ResourceError::NotFound) {
        "[not-found]"
    } else {
        "[other]"
    }
}

fn collect_messages(pipeline: &gst::Pipeline) -> Arc<Mutex<Vec<(gst::MessageType, String)>>> {
    let all = Arc::new(Mutex::new(Vec::new()));
    let a = all.clone();
    pipeline.bus().unwrap().set_sync_handler(move |_, msg| {
        let text = match msg.view() {
            gst::MessageView::Error(e) => {
                format!("{} {:?} {}", e.error(), e.debug(), kind(&e.error()))
            }
            gst::MessageView::Warning(w) => format!("{} {:?}", w.error(), w.debug()),
            gst::MessageView::Info(i) => format!("{} {:?}", i.error(), i.debug()),
            // The name, then every field value as it is (serialising would escape it).
            _ => msg
                .structure()
                .map(|s| {
                    let fields: Vec<String> = s
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "{k}={}",
                                v.get::<String>().unwrap_or_else(|_| format!("{v:?}"))
                            )
                        })
                        .collect();
                    format!("{} {}", s.name(), fields.join(" "))
                })
                .unwrap_or_default(),
        };
        a.lock().unwrap().push((msg.type_(), text));
        gst::BusSyncReply::Drop
    });
    all
}

fn count(messages: &Mutex<Vec<(gst::MessageType, String)>>, name: &str) -> usize {
    messages
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| t.starts_with(name))
        .count()
}

fn frames(src: &gst::Element) -> u64 {
    src.property::<u64>("frames")
}

#[test]
fn plays_rtsp_over_tcp_and_udp() {
    init();
    let port = free_port();
    let _server = Server::start(port);
    for scheme in ["rtspt", "rtspu"] {
        let line = format!(
            "rturisrcbin name=src uri={scheme}://127.0.0.1:{port}/test ! fakesink sync=false"
        );
        let pipeline = gst::parse::launch(&line)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let messages = collect_messages(&pipeline);
        let src = pipeline.by_name("src").unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        wait_for(&format!("frames over {scheme}"), 30, || frames(&src) >= 10);
        assert_eq!(count(&messages, "rturisrcbin-connected"), 1);
        pipeline.set_state(gst::State::Null).unwrap();
        assert!(
            !messages
                .lock()
                .unwrap()
                .iter()
                .any(|(t, _)| *t == gst::MessageType::Error)
        );
    }
}

#[test]
fn recovers_from_server_restarts_and_masks_the_password() {
    init();
    let port = free_port();
    let mut server = Some(Server::start(port));
    let line = format!(
        "rturisrcbin name=cam uri=rtsp://admin:s3cret-pw@127.0.0.1:{port}/test stall-timeout=1500 \
           initial-retry-interval=200 max-retry-interval=1000 ! fakesink sync=false \
         videotestsrc is-live=true ! video/x-raw,framerate=30/1 ! fakesink name=other"
    );
    let pipeline = gst::parse::launch(&line)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let messages = collect_messages(&pipeline);
    let cam = pipeline.by_name("cam").unwrap();
    let other = Arc::new(AtomicU64::new(0));
    let o = other.clone();
    pipeline
        .by_name("other")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            o.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_for("the first frames", 30, || frames(&cam) >= 5);

    let rss_before = rss_kib();
    for round in 1..=3 {
        drop(server.take()); // SIGKILL: the server vanishes mid-stream
        wait_for(&format!("loss {round} to be noticed"), 20, || {
            count(&messages, "rturisrcbin-lost") >= round
        });
        let during = other.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            other.load(Ordering::Relaxed) > during,
            "the other source kept flowing"
        );
        server = Some(Server::start(port));
        let before = frames(&cam);
        wait_for(&format!("frames after restart {round}"), 30, || {
            frames(&cam) >= before + 5
        });
        assert!(count(&messages, "rturisrcbin-restored") >= round);
    }
    assert!(cam.property::<u64>("reconnects") >= 3);
    assert_eq!(cam.property::<String>("source-state"), "playing");
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(cam.property::<String>("source-state"), "stopped");

    let all = messages.lock().unwrap();
    assert!(
        !all.iter().any(|(t, _)| *t == gst::MessageType::Error),
        "never an error: {all:#?}"
    );
    assert!(
        all.iter()
            .any(|(_, text)| text.contains("admin:***@127.0.0.1")),
        "messages name the masked URI"
    );
    assert!(
        !all.iter().any(|(_, text)| text.contains("s3cret-pw")),
        "the password never appears: {all:#?}"
    );
    // One warning per outage (a gst-launch user sees it), whatever the number of retries.
    let warnings: Vec<&String> = all
        .iter()
        .filter(|(t, _)| *t == gst::MessageType::Warning)
        .map(|(_, text)| text)
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(
        warnings
            .iter()
            .all(|w| w.starts_with("Lost rtsp://admin:***@")),
        "{warnings:#?}"
    );
    eprintln!(
        "RSS before the restarts {rss_before} KiB, after {} KiB",
        rss_kib()
    );
}

/// Runs `rturisrcbin` with extra properties until an error (or `secs`); returns the messages.
/// After an error, `source-state` must say `failed` while the element is still playing.
fn run_until_error(props: &str, secs: u64) -> Vec<(gst::MessageType, String)> {
    let pipeline = gst::parse::launch(&format!("rturisrcbin name=src {props} ! fakesink"))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let messages = collect_messages(&pipeline);
    let started = Instant::now();
    let _ = pipeline.set_state(gst::State::Playing);
    let has_error = || {
        messages
            .lock()
            .unwrap()
            .iter()
            .any(|(t, _)| *t == gst::MessageType::Error)
    };
    let until = started + Duration::from_secs(secs);
    while !has_error() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    if has_error() {
        // Time for the supervisor to end after posting (it once set `stopped` then).
        std::thread::sleep(Duration::from_millis(300));
        let src = pipeline.by_name("src").unwrap();
        assert_eq!(src.property::<String>("source-state"), "failed", "{props}");
    }
    pipeline.set_state(gst::State::Null).unwrap();
    messages.lock().unwrap().clone()
}

#[test]
fn what_no_retry_can_fix_fails_at_once() {
    init();
    let empty = std::env::temp_dir().join(format!("rturisrcbin-empty-{}.mp4", std::process::id()));
    std::fs::write(&empty, b"").unwrap();
    for (uri, expected, kind) in [
        (
            "foo://x".to_string(),
            "No GStreamer element reads foo:// URIs",
            "[missing-plugin]",
        ),
        (
            "file:///nonexistent/x.mp4".to_string(),
            "Cannot read /nonexistent/x.mp4",
            "[not-found]",
        ),
        (
            format!("file://{}", empty.display()),
            "is empty",
            "[not-found]",
        ),
        ("x.mp4".to_string(), "\"x.mp4\" is not a URI", "[not-found]"),
    ] {
        let messages = run_until_error(&format!("uri={uri}"), 10);
        let error = messages
            .iter()
            .find(|(t, _)| *t == gst::MessageType::Error)
            .map(|(_, text)| text.clone())
            .unwrap_or_else(|| panic!("{uri}: no error in {messages:?}"));
        assert!(
            error.contains(expected) && error.ends_with(kind),
            "{uri}: {error}"
        );
        // At once: the first attempt's error, with no retry (each is announced) and no
        // warning (an outage warns before its first retry).
        assert_eq!(
            count_in(&messages, "rturisrcbin-retrying"),
            0,
            "{uri}: no retries"
        );
        assert!(
            !messages
                .iter()
                .any(|(t, _)| *t == gst::MessageType::Warning),
            "{uri}: no warning in {messages:?}"
        );
    }
    std::fs::remove_file(&empty).unwrap();
}

fn count_in(messages: &[(gst::MessageType, String)], name: &str) -> usize {
    messages.iter().filter(|(_, t)| t.starts_with(name)).count()
}

#[test]
fn max_attempts_means_attempts_and_an_outage_warns_once() {
    init();
    // Nothing listens on this port: every attempt fails.
    let uri = format!("rtsp://127.0.0.1:{}/none", free_port());
    for max in [1u32, 3] {
        let messages = run_until_error(
            &format!("uri={uri} max-attempts={max} initial-retry-interval=50 connect-timeout=1000"),
            60,
        );
        let error = messages
            .iter()
            .find(|(t, _)| *t == gst::MessageType::Error)
            .map(|(_, text)| text.clone())
            .unwrap_or_else(|| panic!("max-attempts={max}: no error in {messages:?}"));
        assert!(error.contains(&format!("after {max} attempts")), "{error}");
        // N attempts are N - 1 retries, and the outage is one warning, not one per attempt.
        assert_eq!(
            count_in(&messages, "rturisrcbin-retrying"),
            max as usize - 1
        );
        let warnings = messages
            .iter()
            .filter(|(t, _)| *t == gst::MessageType::Warning)
            .count();
        assert_eq!(
            warnings,
            (max > 1) as usize,
            "max-attempts={max}: {messages:?}"
        );
    }
}
