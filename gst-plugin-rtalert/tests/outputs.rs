//! rtalert outputs against real files, a real HTTP server and a real MQTT broker, all on
//! this machine; faults (full disk, unwritable path, dead server, broker restart) keep the
//! pipeline running and are counted.

mod common;
use common::*;
use gst::prelude::*;
use rttest::{free_port, wait_for};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Taken by the tests whose timing suffers when they share the 2 cores with each other
/// (the broker restart waits for reconnects; the credentials test's outputs retry).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rtalert-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Pushes `n` activations of rule "p" (a person appearing every other second).
fn push_activations(h: &mut gst_check::Harness, from: u64, n: u64) {
    for i in 0..n {
        let t = (from + i) * 2 * S;
        push(h, 0, t, &[person(10.0, 10.0)]);
        push(h, 0, t + S, &[]);
    }
}

/// Stops the element (outputs flush) and returns its final stats.
fn finish(h: gst_check::Harness) -> gst::Structure {
    let e = h.element().unwrap();
    drop(h);
    e.property::<gst::Structure>("stats")
}

/// delivered and dropped of the output whose name starts with `prefix`.
fn output_counts(stats: &gst::Structure, prefix: &str) -> (u64, u64) {
    let outputs = stats.get::<gst::Array>("outputs").unwrap();
    let o = outputs
        .iter()
        .map(|v| v.get::<gst::Structure>().unwrap())
        .find(|o| o.get::<&str>("name").unwrap().starts_with(prefix))
        .expect("output listed");
    (o.get("delivered").unwrap(), o.get("dropped").unwrap())
}

/// Alerts still queued in the output whose name starts with `prefix`.
fn output_queued(stats: &gst::Structure, prefix: &str) -> u64 {
    let outputs = stats.get::<gst::Array>("outputs").unwrap();
    outputs
        .iter()
        .map(|v| v.get::<gst::Structure>().unwrap())
        .find(|o| o.get::<&str>("name").unwrap().starts_with(prefix))
        .expect("output listed")
        .get("queued")
        .unwrap()
}

fn warnings(bus: &gst::Bus) -> Vec<String> {
    std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display()))
        })
        .collect()
}

#[test]
fn jsonl_file_rotates_by_size_with_whole_lines() {
    let dir = temp_dir("jsonl");
    let file = dir.join("alerts.jsonl");
    let (mut h, _bus) = harness(&[
        ("rules", "p: class=person cooldown=0"),
        ("jsonl-file", file.to_str().unwrap()),
        ("jsonl-max-bytes", "2000"),
        ("jsonl-max-files", "2"),
    ]);
    push_activations(&mut h, 0, 20);
    let stats = finish(h);
    assert_eq!(output_counts(&stats, "jsonl:"), (20, 0));
    let mut kept = 0;
    for f in [
        file.clone(),
        dir.join("alerts.jsonl.1"),
        dir.join("alerts.jsonl.2"),
    ] {
        assert!(f.exists(), "{} missing", f.display());
        assert!(std::fs::metadata(&f).unwrap().len() <= 2000);
        kept += lines(&f).len();
    }
    assert!(
        !dir.join("alerts.jsonl.3").exists(),
        "only 2 rotated files are kept"
    );
    // The newest alert is in the live file, and files hold whole lines only.
    let live = lines(&file);
    assert_eq!(live.last().unwrap()["stream_time"], 38.0);
    assert!((6..20).contains(&kept), "{kept}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn full_disk_and_unwritable_path_are_counted_and_reported() {
    for path in ["/dev/full", "/proc/rtalert-nowhere/alerts.jsonl"] {
        let (mut h, bus) = harness(&[
            ("rules", "p: class=person cooldown=0"),
            ("jsonl-file", path),
        ]);
        push_activations(&mut h, 0, 3); // the pipeline keeps running
        let stats = finish(h);
        assert_eq!(output_counts(&stats, "jsonl:"), (0, 3), "{path}");
        assert_eq!(stats.get::<u64>("dropped-outputs").unwrap(), 3);
        let w = warnings(&bus);
        assert!(
            w.iter()
                .any(|w| w.contains("not delivered") && w.contains(path)),
            "{path}: {w:?}"
        );
    }
}

struct Server {
    child: Child,
    port: u16,
    record: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn webhook_server(name: &str, args: &[&str]) -> Server {
    let record = temp_dir(name).join("requests.jsonl");
    let mut child = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/servers/webhook_server.py"))
        .arg(&record)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the test HTTP server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Server {
        child,
        port: line.trim().parse().expect("server prints its port"),
        record,
    }
}

#[test]
fn webhook_retries_until_delivered_with_one_idempotency_key() {
    let server = webhook_server("webhook", &["--fail-first", "2"]);
    let url = format!("http://127.0.0.1:{}/alerts", server.port);
    let (mut h, _bus) = harness(&[
        ("rules", "p: class=person cooldown=0"),
        ("webhook-url", &url),
        ("webhook-retries", "4"),
        ("flush-timeout", "10000"),
    ]);
    push_activations(&mut h, 0, 3);
    let stats = finish(h);
    assert_eq!(output_counts(&stats, "webhook:"), (3, 0));
    let requests = lines(&server.record);
    assert_eq!(
        requests.len(),
        5,
        "2 failed attempts, then 3 deliveries: {requests:#?}"
    );
    // The first alert was tried 3 times with the same key; every key is its alert's id.
    let first = &requests[0]["idempotency_key"];
    assert!(requests[..3].iter().all(|r| &r["idempotency_key"] == first));
    for r in &requests {
        assert_eq!(r["idempotency_key"], r["body"]["id"]);
        assert_eq!(r["content_type"], "application/json");
    }
    let ids: std::collections::BTreeSet<_> = requests
        .iter()
        .map(|r| r["body"]["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 3);
}

#[test]
fn unreachable_webhook_counts_dropped_alerts_and_warns() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/alerts");
    let (mut h, bus) = harness(&[
        ("rules", "p: class=person cooldown=0"),
        ("webhook-url", &url),
        ("webhook-retries", "1"),
        ("webhook-timeout", "1000"),
        ("flush-timeout", "10000"),
    ]);
    push_activations(&mut h, 0, 2);
    let stats = finish(h);
    assert_eq!(output_counts(&stats, "webhook:"), (0, 2));
    assert!(
        warnings(&bus)
            .iter()
            .any(|w| w.contains("not delivered") && w.contains("after 2 attempts"))
    );
}

#[test]
fn a_slow_webhook_fills_its_queue_and_the_overflow_is_counted() {
    let server = webhook_server("slow", &["--delay", "0.5"]);
    let url = format!("http://127.0.0.1:{}/alerts", server.port);
    let (mut h, bus) = harness(&[
        ("rules", "p: class=person cooldown=0"),
        ("webhook-url", &url),
        ("webhook-queue", "1"),
        ("flush-timeout", "10000"),
    ]);
    push_activations(&mut h, 0, 6); // pushed far faster than 2 per second
    // While the server is still answering the first one, every emitted alert is already
    // delivered, dropped or queued (at EOS too, before stop flushes the queue).
    let running = h.element().unwrap().property::<gst::Structure>("stats");
    let queued = output_queued(&running, "webhook:");
    let (delivered, dropped) = output_counts(&running, "webhook:");
    assert_eq!(running.get::<u64>("emitted").unwrap(), 6);
    assert_eq!(delivered + dropped + queued, 6, "{running}");
    assert!(queued >= 1, "{running}");
    let stats = finish(h);
    assert_eq!(output_queued(&stats, "webhook:"), 0);
    let (delivered, dropped) = output_counts(&stats, "webhook:");
    assert_eq!(delivered + dropped, 6);
    assert!(dropped >= 3, "{delivered} delivered, {dropped} dropped");
    assert!(warnings(&bus).iter().any(|w| w.contains("queue full")));
    assert_eq!(lines(&server.record).len() as u64, delivered);
}

/// rtalert with snapshots in a new folder (named after `name`), alerting on every person.
fn snapshot_harness(name: &str) -> (PathBuf, gst_check::Harness, gst::Bus) {
    let dir = temp_dir(name);
    let (h, bus) = harness(&[
        ("rules", "p: class=person cooldown=0"),
        ("snapshot-dir", dir.to_str().unwrap()),
    ]);
    (dir, h, bus)
}

/// Snapshots are encoded on rtalert's snapshot thread, never the streaming thread: the alert
/// is posted from there once its JPEG is on disk, and every alert is out before EOS.
#[test]
fn snapshots_are_jpeg_files_named_in_the_alert() {
    let (dir, mut h, bus) = snapshot_harness("snapshots");
    // Each alert as posted: its JSON, the posting thread, and whether its JPEG was there.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    bus.set_sync_handler(move |_, m| {
        if let Some(a) = alert_of(m) {
            let on_disk = a["snapshot"]
                .as_str()
                .is_some_and(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
            let thread = std::thread::current().name().map(str::to_string);
            s2.lock().unwrap().push((a, thread, on_disk));
        }
        gst::BusSyncReply::Pass
    });
    // Three sources, so three conditions start.
    for k in 0..3 {
        push(&mut h, k, k as u64 * 100_000_000, &[person(10.0, 10.0)]);
    }
    h.push_event(gst::event::Eos::new());
    // EOS waits for the snapshot thread: all three are out once it has passed.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (k, (a, thread, on_disk)) in seen.iter().enumerate() {
        assert_eq!(thread.as_deref(), Some("rtalert-snapshot"), "{a}");
        assert!(on_disk, "{a}");
        let path = a["snapshot"].as_str().unwrap();
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..2], &[0xff, 0xd8], "JPEG");
        assert!(path.ends_with(&format!("{}.jpg", a["id"].as_str().unwrap())));
        // In the order the frames raised them.
        assert_eq!(
            a["stream_time_ns"].as_u64(),
            Some(k as u64 * 100_000_000),
            "{a}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_waiting_snapshot_holds_a_copy_not_the_frame() {
    let (dir, mut h, bus) = snapshot_harness("snapshot-copies");
    // Posting the first alert holds the snapshot thread until released, so the next frames'
    // snapshots wait in its queue.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    bus.set_sync_handler(move |_, m| {
        if alert_of(m).is_some() {
            let _ = released
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(30));
        }
        gst::BusSyncReply::Pass
    });
    for k in 0..3 {
        let out = h
            .push_and_pull(frame(k, k as u64 * 100_000_000, &[person(10.0, 10.0)]))
            .unwrap();
        // The frame's memory is not shared: the waiting snapshot has a copy of its own, so a
        // pool can reuse the buffer, and downstream may write into it without a copy.
        assert!(
            out.is_writable() && out.is_all_memory_writable(),
            "frame {k} shares its memory with the snapshot queue"
        );
    }
    for _ in 0..3 {
        release.send(()).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let jpegs = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jpg")
        })
        .count();
    assert_eq!(jpegs, 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

struct Broker {
    child: Child,
}

impl Broker {
    fn start(conf: &Path, port: u16) -> Broker {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (Debian package) is installed");
        wait_for("the broker to listen", 10, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Broker { child }
    }

    /// SIGTERM, so the broker saves its sessions as a real restart would.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn mqtt_publishes_and_survives_a_broker_restart() {
    let _serial = serial();
    let dir = temp_dir("mqtt");
    // Started as root, mosquitto runs as its own user: it must be able to save sessions here.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n",
            dir.display()
        ),
    )
    .unwrap();
    let broker = Broker::start(&conf, port);
    // A persistent QoS 1 subscriber, so nothing is lost for it across the restart.
    let received = dir.join("received.txt");
    let _sub = Broker {
        child: Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "rt/alerts",
                "-q",
                "1",
                "-c",
                "-i",
                "rt-test-sub",
            ])
            .stdout(std::fs::File::create(&received).unwrap())
            .spawn()
            .unwrap(),
    };
    std::thread::sleep(Duration::from_millis(500));

    let url = format!("mqtt://127.0.0.1:{port}/rt/alerts");
    let (mut h, bus) = harness(&[
        ("rules", "p: class=person cooldown=0"),
        ("mqtt-url", &url),
        ("flush-timeout", "10000"),
    ]);
    let delivered = |h: &gst_check::Harness| output_counts(&stats(h), "mqtt:").0;
    push_activations(&mut h, 0, 3);
    wait_for("3 acknowledged publishes", 20, || delivered(&h) == 3);

    broker.stop();
    push_activations(&mut h, 3, 3); // the broker is gone: these wait in the queue
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(delivered(&h), 3);
    assert!(
        warnings(&bus)
            .iter()
            .any(|w| w.contains("broker unreachable"))
    );

    let broker = Broker::start(&conf, port);
    wait_for("the queued alerts after the restart", 30, || {
        delivered(&h) == 6
    });
    let stats = finish(h);
    assert_eq!(output_counts(&stats, "mqtt:"), (6, 0));
    let got = || {
        lines(&received)
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    wait_for(
        &format!("the subscriber to get all 6 (has {:?})", got()),
        20,
        || got().len() >= 6,
    );
    let ids: std::collections::BTreeSet<String> = lines(&received)
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids.len(),
        6,
        "every alert arrived (duplicates allowed by QoS 1, not losses)"
    );
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broker_that_never_answers_counts_every_alert_as_dropped() {
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}/rt/alerts");
    let (mut h, bus) = harness(&[
        ("rules", "p: class=person cooldown=0"),
        ("mqtt-url", &url),
        ("flush-timeout", "300"),
    ]);
    push_activations(&mut h, 0, 3); // the pipeline keeps running
    let stats = finish(h);
    assert_eq!(output_counts(&stats, "mqtt:"), (0, 3));
    assert!(
        warnings(&bus)
            .iter()
            .any(|w| w.contains("broker unreachable"))
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it (`ca.pem`, `server.pem`,
/// `server.key` in `dir`), made with the openssl command.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (Debian package) is installed");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=rt-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    for f in ["ca.pem", "server.pem", "server.key"] {
        std::fs::set_permissions(
            dir.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
}

/// An rtalert publishing 3 alerts to `url` (the harness ends before returning): delivered
/// and dropped, and the warnings it posted.
fn publish_three(url: &str, flush_ms: u32) -> ((u64, u64), Vec<String>) {
    let (mut h, bus) = harness(&[
        ("rules", "p: class=person cooldown=0"),
        ("mqtt-url", url),
        ("flush-timeout", &flush_ms.to_string()),
    ]);
    push_activations(&mut h, 0, 3);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Until everything is acknowledged or a connection problem was reported.
    while Instant::now() < deadline
        && output_counts(&stats(&h), "mqtt").0 < 3
        && !seen.iter().any(|w: &String| w.contains("unreachable"))
    {
        seen.extend(warnings(&bus));
        std::thread::sleep(Duration::from_millis(50));
    }
    let counts = output_counts(&finish(h), "mqtt");
    seen.extend(warnings(&bus));
    (counts, seen)
}

#[test]
fn mqtt_user_and_password_authenticate_and_tls_problems_say_what_to_fix() {
    let _serial = serial();
    let dir = temp_dir("mqtt-auth");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    make_certs(&dir);
    let passwd = dir.join("passwd");
    let ok = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwd)
        .args(["rt user", "s3cr@t:x"])
        .status()
        .expect("mosquitto_passwd (Debian package mosquitto) is installed");
    assert!(ok.success());
    std::fs::set_permissions(&passwd, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (plain, tls) = (free_port(), free_port());
    let conf = dir.join("mosquitto.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous false\npassword_file {d}/passwd\n\
             listener {plain} 127.0.0.1\n\
             listener {tls} 127.0.0.1\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
        ),
    )
    .unwrap();
    let broker = Broker::start(&conf, plain);
    wait_for("the TLS listener", 10, || {
        std::net::TcpStream::connect(("127.0.0.1", tls)).is_ok()
    });

    // The user and password are percent-encoded in the URL.
    let url = format!("mqtt://rt%20user:s3cr%40t%3Ax@127.0.0.1:{plain}/rt/alerts");
    let (counts, seen) = publish_three(&url, 10_000);
    assert_eq!(counts, (3, 0), "{seen:?}");

    // A wrong password: refused, said so with what to check, the password masked.
    let url = format!("mqtt://rt%20user:wrongpw@127.0.0.1:{plain}/rt/alerts");
    let (counts, seen) = publish_three(&url, 300);
    assert_eq!(counts, (0, 3));
    let w = seen
        .iter()
        .find(|w| w.contains("unreachable"))
        .expect("a warning");
    assert!(w.contains("check the user and password"), "{w}");
    assert!(!seen.iter().any(|w| w.contains("wrongpw")), "{seen:?}");

    // mqtts checks the broker against the system's CA store, which lacks the test CA.
    let url = format!("mqtts://rt%20user:s3cr%40t%3Ax@127.0.0.1:{tls}/rt/alerts");
    let (counts, seen) = publish_three(&url, 300);
    assert_eq!(counts, (0, 3));
    let w = seen
        .iter()
        .find(|w| w.contains("unreachable"))
        .expect("a warning");
    assert!(w.starts_with("mqtts:127.0.0.1:"), "{w}");
    assert!(w.contains("signed by a CA in the system store"), "{w}");
    assert!(!w.contains("s3cr"), "{w}");
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_webhook_slower_than_its_timeout_fails_each_attempt() {
    let server = webhook_server("timeout", &["--delay", "2"]);
    let url = format!("http://127.0.0.1:{}/alerts", server.port);
    let (mut h, bus) = harness(&[
        ("rules", "p: class=person cooldown=0"),
        ("webhook-url", &url),
        ("webhook-timeout", "300"),
        ("webhook-retries", "1"),
        ("flush-timeout", "10000"),
    ]);
    push_activations(&mut h, 0, 1);
    let stats = finish(h);
    assert_eq!(output_counts(&stats, "webhook:"), (0, 1));
    assert!(
        warnings(&bus)
            .iter()
            .any(|w| w.contains("not delivered") && w.contains("after 2 attempts"))
    );
}

#[test]
fn credentials_in_output_urls_reach_no_message_stats_or_log() {
    let _serial = serial();
    init();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let lines = log.clone();
    let log_fn = gst::log::add_log_function(move |cat, _, _, _, _, _, msg| {
        // Element warnings are logged under GST_ERROR_SYSTEM.
        if cat.name().starts_with("rtalert") || cat.name() == "GST_ERROR_SYSTEM" {
            lines
                .lock()
                .unwrap()
                .extend(msg.get().map(|m| m.to_string()));
        }
    });
    gst::log::set_threshold_for_name("rtalert*", gst::DebugLevel::Log);
    gst::log::set_threshold_for_name("GST_ERROR_SYSTEM", gst::DebugLevel::Warning);
    // Nothing listens on these ports, so both outputs fail and warn.
    // The path counts as a secret too: Slack, Discord and Teams keep theirs there.
    let webhook = format!(
        "http://user:s3cret@127.0.0.1:{}/services/T0/B0/pathSECRET?token=t0ken",
        free_port()
    );
    let mqtt = format!("mqtt://user:s3cret@127.0.0.1:{}/rt/alerts", free_port());
    let (mut h, bus) = harness(&[
        ("rules", "p: class=person cooldown=0"),
        ("webhook-url", &webhook),
        ("webhook-retries", "1"),
        ("mqtt-url", &mqtt),
        ("flush-timeout", "2000"),
    ]);
    push_activations(&mut h, 0, 2);
    let e = h.element().unwrap();
    let mut shown: Vec<String> = ["webhook-url", "mqtt-url"]
        .iter()
        .map(|p| e.property::<String>(p))
        .collect();
    let stats = finish(h);
    shown.push(stats.to_string());
    for m in std::iter::from_fn(|| bus.pop()) {
        shown.extend(m.structure().map(|s| s.to_string()));
        match m.view() {
            gst::MessageView::Warning(w) => shown.push(format!("{} {:?}", w.error(), w.debug())),
            gst::MessageView::Info(i) => shown.push(format!("{} {:?}", i.error(), i.debug())),
            _ => {}
        }
    }
    gst::log::remove_log_function(log_fn);
    gst::log::unset_threshold_for_name("rtalert*");
    gst::log::unset_threshold_for_name("GST_ERROR_SYSTEM");
    let log = log.lock().unwrap().join("\n");
    let all = format!("{}\n{log}", shown.join("\n"));
    for secret in ["s3cret", "t0ken", "pathSECRET", "/services/T0"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
    // The URLs themselves are shown, masked: a webhook by scheme, host and port.
    assert!(log.contains("webhook:http://user:***@127.0.0.1:"), "{log}");
    assert!(all.contains("/***: "), "{all}");
    assert!(all.contains("not delivered"), "{all}");
    // The MQTT output is named by broker and topic; the user and password are credentials.
    assert!(all.contains("mqtt:127.0.0.1:"), "{all}");
    assert!(all.contains("broker unreachable"), "{all}");
}

/// nats-url: a real nats-server with JetStream; every alert acknowledged by the server (so
/// stored in the stream the output created), and the URL's password never shown.
#[test]
fn nats_output_publishes_to_jetstream() {
    let _serial = serial();
    init();
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("rtalert-nats-{port}"));
    let mut server = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (Debian package) is installed");
    wait_for("nats-server to listen", 10, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let url = format!("nats://127.0.0.1:{port}/site1.alerts");
    let (mut h, _bus) = harness(&[
        ("rules", "p: class=person cooldown=0"),
        ("nats-url", &url),
        ("flush-timeout", "10000"),
    ]);
    push_activations(&mut h, 0, 3);
    let stats = finish(h);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output_counts(&stats, "nats:"), (3, 0), "{stats}");
}

/// A reader that stops reading standard output (a full pipe, a paused terminal) costs alerts,
/// never the stream. Run in a child process whose stdout is a pipe nobody reads until the
/// child has pushed every frame (the frames once waited in `write` forever).
#[test]
fn a_stdout_nobody_reads_drops_alerts_and_never_stalls_the_stream() {
    const NAME: &str = "a_stdout_nobody_reads_drops_alerts_and_never_stalls_the_stream";
    let Some(dir) = std::env::var_os("RT_TEST_STDOUT_DIR").map(PathBuf::from) else {
        let dir = temp_dir("stdout-unread");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture"])
            .env("RT_TEST_STDOUT_DIR", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pushed = dir.join("pushed");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pushed.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let stalled = !pushed.exists();
        if stalled {
            let _ = child.kill();
        }
        // Now read, so the child's output and its test report can finish.
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        let status = child.wait().unwrap();
        assert!(!stalled, "the stream stalled on the unread stdout");
        assert!(status.success() && out.contains("1 passed"), "{status}");
        let printed = out.lines().filter(|l| l.starts_with("{\"id\"")).count() as u64;
        let counts = std::fs::read_to_string(dir.join("counts")).unwrap();
        let (delivered, dropped) = counts.trim().split_once(' ').unwrap();
        let (delivered, dropped): (u64, u64) =
            (delivered.parse().unwrap(), dropped.parse().unwrap());
        assert!(dropped > 0, "{counts}");
        assert_eq!(delivered + dropped, 3000, "{counts}");
        assert_eq!(printed, delivered, "every delivered alert is a whole line");
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    };
    let (mut h, _bus) = harness(&[("rules", "p: class=person cooldown=0"), ("stdout", "true")]);
    // 3000 alerts of about 400 bytes: far more than a pipe (64 KiB) and the queue hold.
    push_activations(&mut h, 0, 3000);
    std::fs::write(dir.join("pushed"), "").unwrap();
    let stats = finish(h);
    let (delivered, dropped) = output_counts(&stats, "stdout");
    std::fs::write(dir.join("counts"), format!("{delivered} {dropped}")).unwrap();
}
