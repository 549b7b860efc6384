//! rtalert in real pipelines: bad rules stop the start with a clear error, vtest.avi gives
//! the same alerts on every run, and apps may read `stats` from a synchronous bus handler.

mod common;
use common::*;
use gst::prelude::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a pipeline posted before it ended.
#[derive(Default)]
struct Played {
    error: Option<String>,
    alerts: Vec<serde_json::Value>,
    warnings: Vec<String>,
}

/// Runs `line` to the end (or its error), collecting what it posted.
fn play(line: &str) -> Played {
    init();
    let pipeline = gst::parse::launch(line)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let bus = pipeline.bus().unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let mut played = Played::default();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(300)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                played.error = Some(e.error().to_string());
                break;
            }
            gst::MessageView::Warning(w) => played.warnings.push(w.error().to_string()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "rtalert") {
                    let json = s.get::<&str>("json").unwrap();
                    played.alerts.push(serde_json::from_str(json).unwrap());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    played
}

/// Runs `line` to the end; returns the error, if any, and the alerts posted.
fn run(line: &str) -> (Option<String>, Vec<serde_json::Value>) {
    let played = play(line);
    (played.error, played.alerts)
}

#[test]
fn rules_it_cannot_understand_stop_the_pipeline_from_starting() {
    let dir = std::env::temp_dir().join(format!("rtalert-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "malformed.yaml",
            "rules: [\n  - name: a\n",
            "malformed.yaml:2:3: did not find expected node content",
        ),
        (
            "unknown.yaml",
            "rules:\n  - name: a\n    colour: red\n",
            "unknown.yaml:3:5: rules[0]: unknown field `colour`",
        ),
        (
            "zone.yaml",
            "rules:\n  - name: a\n    zone: [[0, 0], [1, 1]]\n",
            "zone.yaml:3:11: rules[0].zone: a zone needs at least 3 points",
        ),
        (
            "outside.yaml",
            "rules:\n  - name: a\n    zone: [[0, 0], [1, 0], [1, 1.2]]\n",
            "outside the frame",
        ),
        (
            "negative.yaml",
            "rules:\n  - name: a\n    cooldown: -5\n",
            "negative.yaml:3:15: rules[0].cooldown: -5 is not a duration",
        ),
    ];
    for (name, text, want) in cases {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        let line = format!(
            "videotestsrc num-buffers=1 ! rtalert rules-file={} ! fakesink",
            file.display()
        );
        let (error, _) = run(&line);
        let error = error.unwrap_or_else(|| panic!("{name}: the pipeline started"));
        assert!(error.contains(want), "{name}: {error}");
    }
    for (rules, want) in [
        ("a: duration=-1", "seconds >= 0"),
        ("a: zone=0,0,2,0,1,1", "outside the frame"),
        ("", "no rules"),
    ] {
        let (error, _) = run(&format!(
            "videotestsrc num-buffers=1 ! rtalert rules=\"{rules}\" ! fakesink"
        ));
        assert!(
            error.as_deref().is_some_and(|e| e.contains(want)),
            "{rules}: {error:?}"
        );
    }
    let (error, _) = run(
        "videotestsrc num-buffers=1 ! rtalert rules=\"a: class=person\" mqtt-url=tcp://x ! fakesink",
    );
    let error = error.unwrap();
    assert!(
        error.contains("mqtt://[user:password@]host:1883/topic"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn vtest_person_in_zone_alerts_are_the_same_on_every_run() {
    let model = shared().join("models/yolox_nano.onnx");
    let video = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
    let rules = repo().join("pipelines/rules/person-in-zone.yaml");
    let line = format!(
        "filesrc location={video} ! decodebin ! videoconvert ! rtpreprocess \
         ! rtinfer name=detector model-file={} ! rtalert rules-file={} ! fakesink",
        model.display(),
        rules.display()
    );
    let strip = |alerts: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        alerts
            .into_iter()
            .map(|mut a| {
                let o = a.as_object_mut().unwrap();
                o.remove("id");
                o.remove("wall_time");
                a
            })
            .collect()
    };
    let (e1, first) = run(&line);
    let (e2, second) = run(&line);
    assert_eq!((e1, e2), (None, None));
    let (first, second) = (strip(first), strip(second));
    let summary: Vec<(String, String, f64)> = first
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().into(),
                a["rule"].as_str().unwrap().into(),
                a["stream_time"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(
        summary
            .iter()
            .filter(|(k, r, _)| k == "start" && r == "person-in-doorway")
            .count()
            >= 3,
        "{summary:?}"
    );
    assert!(summary.iter().any(|(k, _, _)| k == "ended"), "{summary:?}");
    assert_eq!(
        first, second,
        "two runs of the same file give the same alerts"
    );
}

/// Alerts, stats (every millisecond), snapshot warnings (the folder cannot be made) and a
/// rules reload (info) from an rtalert whose every message makes a sync bus handler read
/// `stats`; returns how many messages of each kind the handler saw.
fn run_reading_stats_on_every_message() -> BTreeMap<String, u32> {
    init();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=\"video/x-raw,format=RGB,width={W},height={H},framerate=10/1\" \
         ! rtalert name=alert rules=\"p: class=person cooldown=0\" stats-interval=1 \
         snapshot-dir=/proc/rtalert-nowhere ! fakesink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let alert = pipeline.by_name("alert").unwrap();
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let (weak, counts) = (alert.downgrade(), seen.clone());
    let bus = pipeline.bus().unwrap();
    bus.set_sync_handler(move |_, msg| {
        let kind = match msg.view() {
            gst::MessageView::Element(e) => e.structure().map(|s| s.name().to_string()),
            gst::MessageView::Warning(_) => Some("warning".into()),
            gst::MessageView::Info(_) => Some("info".into()),
            _ => None,
        };
        if let (Some(kind), Some(e)) = (kind, weak.upgrade())
            && msg.src() == Some(e.upcast_ref())
        {
            let _ = e.property::<gst::Structure>("stats");
            *counts.lock().unwrap().entry(kind).or_insert(0) += 1;
        }
        gst::BusSyncReply::Pass
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let src = pipeline.by_name("src").unwrap();
    let src = src.downcast_ref::<gst_app::AppSrc>().unwrap();
    for i in 0..20 {
        if i == 10 {
            alert.set_property("rules", "p: class=person cooldown=0; c: class=car");
        }
        src.push_buffer(frame(0, i * 2 * S, &[person(10.0, 10.0)]))
            .unwrap();
        src.push_buffer(frame(0, (i * 2 + 1) * S, &[])).unwrap();
    }
    src.end_of_stream().unwrap();
    let end = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    assert!(
        matches!(
            end.as_ref().map(|m| m.view()),
            Some(gst::MessageView::Eos(_))
        ),
        "{end:?}"
    );
    pipeline.set_state(gst::State::Null).unwrap();
    seen.lock().unwrap().clone()
}

#[test]
fn reading_stats_from_a_sync_bus_handler_does_not_deadlock() {
    // On its own thread, so that a deadlock fails the test instead of hanging it.
    let run = std::thread::spawn(run_reading_stats_on_every_message);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !run.is_finished() {
        assert!(
            Instant::now() < deadline,
            "deadlock: the pipeline did not finish in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = run.join().unwrap();
    for kind in ["rtalert", "rtalert-stats", "warning", "info"] {
        assert!(
            seen.get(kind).is_some_and(|&n| n > 0),
            "no {kind}: {seen:?}"
        );
    }
    assert_eq!(seen["rtalert"], 20, "{seen:?}");
}

/// The warnings a pipeline posts before it ends.
fn warnings_of(line: &str) -> Vec<String> {
    let played = play(line);
    assert_eq!(played.error, None, "{line}");
    played.warnings
}

#[test]
fn a_rule_naming_a_class_no_model_upstream_has_is_a_warning() {
    // Two detectors in a row, the second with its own labels: rtalert learns both models'
    // labels from the sticky rt-model-labels event (through a queue, as through any element
    // that keeps sticky events) and checks its rules at the first frame.
    let model = shared().join("models/yolox_nano.onnx");
    let labels = std::env::temp_dir().join(format!("rt-thing-labels-{}.txt", std::process::id()));
    let things: Vec<String> = (0..80).map(|i| format!("thing{i}")).collect();
    std::fs::write(&labels, things.join("\n")).unwrap();
    let line = |rules: &str| {
        format!(
            "videotestsrc num-buffers=3 ! video/x-raw,width=320,height=240 ! videoconvert \
             ! rtinfer name=coco model-file={m} ! rtinfer name=things model-file={m} \
             label-file={l} ! queue ! rtalert rules=\"{rules}\" ! fakesink",
            m = model.display(),
            l = labels.display()
        )
    };
    let warnings = warnings_of(&line("a: class=person; b: class=thing3"));
    assert!(
        warnings.is_empty(),
        "labels of both models are known: {warnings:?}"
    );
    let warnings = warnings_of(&line("a: class=persn; b: class=thing3"));
    let _ = std::fs::remove_file(&labels);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert!(
        w.starts_with("rule \"a\": class \"persn\" never matches"),
        "{w}"
    );
    assert!(
        w.contains("coco has 80 labels: person, bicycle")
            && w.contains("things has 80 labels: thing0"),
        "{w}"
    );
}

#[test]
fn an_unreadable_rules_file_is_a_resource_error_and_bad_rules_a_settings_error() {
    let dir = std::env::temp_dir().join(format!("rtalert-domains-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "rules:\n  - name: a\n    cooldown: -5\n").unwrap();
    let missing = dir.join("missing.yaml");
    let (error, text) = start_error(&format!("rules-file={}", missing.display()));
    assert!(
        error.matches(gst::ResourceError::OpenRead) && text.contains("cannot read rules file"),
        "{error:?}"
    );
    let (error, text) = start_error(&format!("rules-file={}", bad.display()));
    assert!(
        error.matches(gst::LibraryError::Settings) && text.contains("is not a duration"),
        "{error:?}"
    );
    // An output's URL is a setting too, shown with its password masked.
    let (error, text) = start_error("rules=\"a: class=person\" mqtt-url=mqtt://u:s3cret@h:port/t");
    assert!(
        error.matches(gst::LibraryError::Settings)
            && text.contains("bad port")
            && !text.contains("s3cret"),
        "{error:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An mqtts:// output with no CA certificates to check the broker against cannot be opened:
/// a resource error that says what to install. Run in a child process, whose SSL_CERT_FILE
/// points at an empty file (setting it here would reach the other tests' threads).
#[test]
fn mqtts_without_ca_certificates_is_a_resource_error() {
    if std::env::var_os("RT_TEST_NO_CA").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "mqtts_without_ca_certificates_is_a_resource_error",
                "--nocapture",
            ])
            .env("RT_TEST_NO_CA", "1")
            .env("SSL_CERT_FILE", "/dev/null")
            .env("SSL_CERT_DIR", "/nonexistent")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && log.contains("1 passed"),
            "{log}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let (error, text) = start_error("rules=\"a: class=person\" mqtt-url=mqtts://127.0.0.1:1/t");
    assert!(
        error.matches(gst::ResourceError::OpenWrite)
            && text.contains("no CA certificates")
            && text.contains("ca-certificates"),
        "{error:?}"
    );
}

/// The error a one-frame pipeline with `rtalert <props>` stops with.
fn start_error(props: &str) -> (gst::glib::Error, String) {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! rtalert {props} ! fakesink"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let error =
        rttest::first_error(&pipeline).unwrap_or_else(|| panic!("{props}: the pipeline started"));
    let text = error.message().to_string();
    (error, text)
}
