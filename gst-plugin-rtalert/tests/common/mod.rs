//! Helpers for the rtalert tests: synthetic frames with detections, alerts from the bus.
#![allow(dead_code, unused_imports)]

use gst::prelude::*;
use gst_check::Harness;
use rtmeta::{Detection, Detections};
use std::sync::Once;

pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstrtalert::plugin_register_static().unwrap();
        gstrtinfer::plugin_register_static().unwrap();
    });
}

pub const S: u64 = 1_000_000_000;
pub const W: u32 = 100;
pub const H: u32 = 100;

pub use rttest::{repo, shared};

/// An rtalert in a harness with `props` (gst-launch syntax values), and the bus it posts on.
pub fn harness(props: &[(&str, &str)]) -> (Harness, gst::Bus) {
    init();
    let mut b = gst::ElementFactory::make("rtalert");
    for (k, v) in props {
        b = b.property_from_str(k, v);
    }
    let e = b.build().unwrap();
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str(&format!(
        "video/x-raw,format=RGB,width={W},height={H},framerate=10/1"
    ));
    (h, bus)
}

/// An object: (label, confidence, x, y, w, h) in pixels of the 100x100 frame.
pub type Obj<'a> = (&'a str, f32, f32, f32, f32, f32);

pub fn person(x: f32, y: f32) -> Obj<'static> {
    ("person", 0.9, x, y, 10.0, 10.0)
}

/// A frame of `source` at running time `t` (ns) carrying `objects`.
pub fn frame(source: u32, t: u64, objects: &[Obj]) -> gst::Buffer {
    let mut buf = gst::Buffer::from_mut_slice(vec![128u8; (W * H * 3) as usize]);
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_nseconds(t));
        Detections {
            source_id: source,
            frame_number: t / (S / 10),
            width: W,
            height: H,
            stale: false,
            objects: objects
                .iter()
                .map(|(label, confidence, x, y, w, h)| Detection {
                    class_id: match *label {
                        "person" => 0,
                        "car" => 2,
                        _ => 99,
                    },
                    label: label.to_string(),
                    confidence: *confidence,
                    x: *x,
                    y: *y,
                    w: *w,
                    h: *h,
                    track_id: None,
                    producer: None,
                })
                .collect(),
        }
        .attach(b)
        .unwrap();
    }
    buf
}

/// Pushes a frame of `source` at running time `t` (ns) carrying `objects`.
pub fn push(h: &mut Harness, source: u32, t: u64, objects: &[Obj]) {
    let buf = frame(source, t, objects);
    let out = h.push_and_pull(buf).unwrap();
    assert!(
        Detections::from_buffer(&out).is_some(),
        "buffers pass through unchanged"
    );
}

/// The alert a bus message carries, if it is one, as a JSON document.
pub fn alert_of(m: &gst::Message) -> Option<serde_json::Value> {
    match m.view() {
        gst::MessageView::Element(e) => e
            .structure()
            .filter(|s| s.name() == "rtalert")
            .map(|s| serde_json::from_str(s.get::<&str>("json").unwrap()).unwrap()),
        _ => None,
    }
}

/// Alerts posted on `bus` so far, as JSON documents.
pub fn alerts(bus: &gst::Bus) -> Vec<serde_json::Value> {
    std::iter::from_fn(|| bus.pop())
        .filter_map(|m| alert_of(&m))
        .collect()
}

/// (kind, rule, stream seconds, suppressed) of each alert, for compact asserts.
pub fn summary(alerts: &[serde_json::Value]) -> Vec<(String, String, f64, u64)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_string(),
                a["rule"].as_str().unwrap().to_string(),
                a["stream_time"].as_f64().unwrap(),
                a["suppressed"].as_u64().unwrap(),
            )
        })
        .collect()
}

pub fn s(kind: &str, rule: &str, t: f64, suppressed: u64) -> (String, String, f64, u64) {
    (kind.into(), rule.into(), t, suppressed)
}

/// The element's `stats` property.
pub fn stats(h: &Harness) -> gst::Structure {
    h.element().unwrap().property::<gst::Structure>("stats")
}
