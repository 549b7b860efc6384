//! Helpers shared by the integration tests.
#![allow(dead_code, unused_imports)]

use gst::prelude::*;
use std::path::PathBuf;
use std::sync::Once;

pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstrtinfer::plugin_register_static().unwrap();
    });
}

pub use rttest::{model, shared};

/// rtinfer's `active-device` with its defaults on this host's CPU: OpenVINO in bf16 where the
/// CPU computes bf16 (the faster there), else ONNX Runtime.
#[allow(dead_code)]
pub fn cpu_default_device() -> &'static str {
    if gstrtinfer::device::cpu_computes_bf16() {
        "openvino:CPU (bf16)"
    } else {
        "cpu"
    }
}

pub fn test_data(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
        .display()
        .to_string()
}

pub const DARKNET: &str = "/usr/share/darknet/data";
pub const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

/// What a pipeline run ended with.
#[derive(Debug)]
pub enum End {
    Eos,
    Error { message: String, debug: String },
}

/// Runs `pipeline` to EOS or error (with a timeout), returning how it ended and the
/// element messages posted on the way.
pub fn run(pipeline: &gst::Pipeline) -> (End, Vec<gst::Structure>) {
    let bus = pipeline.bus().unwrap();
    let mut elements = Vec::new();
    // A failed state change also posts its error on the bus.
    let _ = pipeline.set_state(gst::State::Playing);
    let mut end = None;
    while end.is_none() {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(120)) else {
            panic!("pipeline neither finished nor failed within 120 s");
        };
        match msg.view() {
            gst::MessageView::Eos(_) => end = Some(End::Eos),
            gst::MessageView::Error(e) => {
                end = Some(End::Error {
                    message: e.error().to_string(),
                    debug: e.debug().map(|d| d.to_string()).unwrap_or_default(),
                })
            }
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    elements.push(s.to_owned());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (end.unwrap(), elements)
}

/// Parses a launch line into a pipeline.
pub fn launch_pipeline(line: &str) -> gst::Pipeline {
    gst::parse::launch(line)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

/// The appsink named `name` in `pipeline`.
pub fn appsink(pipeline: &gst::Pipeline, name: &str) -> gst_app::AppSink {
    pipeline
        .by_name(name)
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap()
}

/// Parses and runs a launch line; returns the end state and the detections seen by the
/// appsink named `out` (if there is one).
pub fn run_launch(line: &str) -> (End, Vec<rtmeta::Detections>) {
    init();
    let pipeline = launch_pipeline(line);
    let found = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    if let Some(sink) = pipeline.by_name("out") {
        let sink = sink.downcast::<gst_app::AppSink>().unwrap();
        let f = found.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let d = rtmeta::Detections::from_buffer(sample.buffer().unwrap());
                    f.lock()
                        .unwrap()
                        .push(d.expect("every frame carries detections"));
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    let (end, _) = run(&pipeline);
    let found = std::mem::take(&mut *found.lock().unwrap());
    (end, found)
}

/// One expected detection, as in the golden files.
#[derive(Clone, Debug)]
pub struct Expected {
    pub class_id: u32,
    pub confidence: f32,
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

pub fn golden(model: &str, image: &str) -> Vec<Expected> {
    let path = shared()
        .join("data")
        .join(format!("golden_{model}_{image}.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| Expected {
            class_id: d["class_id"].as_u64().unwrap() as u32,
            confidence: d["confidence"].as_f64().unwrap() as f32,
            x: d["x"].as_f64().unwrap() as f32,
            y: d["y"].as_f64().unwrap() as f32,
            w: d["w"].as_f64().unwrap() as f32,
            h: d["h"].as_f64().unwrap() as f32,
        })
        .collect()
}

fn iou(a: (f32, f32, f32, f32), b: (f32, f32, f32, f32)) -> f32 {
    let w = ((a.0 + a.2).min(b.0 + b.2) - a.0.max(b.0)).max(0.0);
    let h = ((a.1 + a.3).min(b.1 + b.3) - a.1.max(b.1)).max(0.0);
    let inter = w * h;
    inter / (a.2 * a.3 + b.2 * b.3 - inter)
}

/// The shared tolerance (../shared/data/README.md): every expected detection with
/// confidence >= 0.35 has a same-class detection at IoU >= 0.8 with confidence within 0.1,
/// and every reported detection above 0.35 matches an expected one (class, IoU >= 0.8).
/// Returns the problems found.
pub fn compare(expected: &[Expected], got: &[rtmeta::Detection]) -> Vec<String> {
    let mut problems = Vec::new();
    for e in expected.iter().filter(|e| e.confidence >= 0.35) {
        let hit = got.iter().any(|g| {
            g.class_id == e.class_id
                && iou((e.x, e.y, e.w, e.h), (g.x, g.y, g.w, g.h)) >= 0.8
                && (g.confidence - e.confidence).abs() <= 0.1
        });
        if !hit {
            problems.push(format!("missing {e:?}"));
        }
    }
    for g in got.iter().filter(|g| g.confidence > 0.35) {
        let hit = expected.iter().any(|e| {
            g.class_id == e.class_id && iou((e.x, e.y, e.w, e.h), (g.x, g.y, g.w, g.h)) >= 0.8
        });
        if !hit {
            problems.push(format!("extra {g:?}"));
        }
    }
    problems
}

/// Polls `done` every 5 ms; fails the test naming `what` after `secs` seconds.
pub fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The last `rtinfer-stats` message among the element messages `run` returns.
pub fn last_stats(messages: &[gst::Structure]) -> &gst::Structure {
    messages
        .iter()
        .rev()
        .find(|s| s.name() == "rtinfer-stats")
        .expect("rtinfer-stats posted")
}
