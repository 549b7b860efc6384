//! rtalert in real pipelines: bad rules stop the start with a clear error, and vtest.avi
//! gives the same alerts on every run.

mod common;
use common::*;
use gst::prelude::*;

/// Runs `line` to the end; returns the error, if any, and the alerts posted.
fn run(line: &str) -> (Option<String>, Vec<serde_json::Value>) {
    init();
    let pipeline = gst::parse::launch(line)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let bus = pipeline.bus().unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let mut alerts = Vec::new();
    let mut error = None;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(300)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                error = Some(e.error().to_string());
                break;
            }
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "rtalert") {
                    alerts.push(serde_json::from_str(s.get::<&str>("json").unwrap()).unwrap());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (error, alerts)
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
    assert!(error.unwrap().contains("mqtt://host:1883/topic"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn vtest_person_in_zone_alerts_are_the_same_on_every_run() {
    let model = shared().join("models/yolox_nano.onnx");
    let video = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
    let rules = repo().join("pipelines/rules/person-in-zone.yaml");
    let line = format!(
        "filesrc location={video} ! decodebin ! videoconvert ! rtpreprocess ! rtinfer model-file={} \
         ! rtalert rules-file={} ! fakesink",
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
