//! rttrack and rtdetreplay through gst_check::Harness and real pipelines.

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;
use rtmeta::{Detection, Detections};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstrttrack::plugin_register_static().unwrap();
    });
}

const FRAME_NS: u64 = 40_000_000; // 25 fps

fn person(x: f32, y: f32, confidence: f32) -> Detection {
    Detection {
        class_id: 0,
        label: "person".into(),
        confidence,
        x,
        y,
        w: 40.0,
        h: 100.0,
        track_id: None,
        producer: None,
    }
}

fn frame(source_id: u32, number: u64, objects: Vec<Detection>) -> Detections {
    Detections {
        source_id,
        frame_number: number,
        width: 640,
        height: 480,
        stale: false,
        objects,
    }
}

fn buffer(dets: Option<&Detections>, number: u64) -> gst::Buffer {
    let mut b = gst::Buffer::with_size(16).unwrap();
    {
        let b = b.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_nseconds(number * FRAME_NS));
        if let Some(d) = dets {
            d.attach(b).unwrap();
        }
    }
    b
}

fn video_caps() -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", 640)
        .field("height", 480)
        .field("framerate", gst::Fraction::new(25, 1))
        .build()
}

/// A file in the test's temporary folder.
fn temp_file(name: &str, text: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rttrack-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

fn jsonl(frames: &[Detections]) -> String {
    frames
        .iter()
        .map(|d| d.to_json(None).to_string() + "\n")
        .collect()
}

/// A harness around an element made with these properties (set before it starts).
fn harness(factory: &str, props: &[(&str, glib::Value)]) -> Harness {
    let element = gst::ElementFactory::make(factory).build().unwrap();
    for (name, value) in props {
        element.set_property_from_value(name, value);
    }
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps(video_caps());
    h
}

fn replay_harness(location: &std::path::Path, source_id: u32) -> Harness {
    harness(
        "rtdetreplay",
        &[
            ("location", location.to_str().unwrap().to_value()),
            ("source-id", source_id.to_value()),
        ],
    )
}

/// The text of the first error message on `bus`.
fn bus_error(bus: &gst::Bus) -> String {
    std::iter::from_fn(|| bus.pop())
        .find_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .expect("an error message")
}

/// Starts `element`, which must fail; returns the error it posted.
fn start_error(element: &gst::Element) -> String {
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    assert!(element.set_state(gst::State::Paused).is_err(), "it started");
    element.set_state(gst::State::Null).unwrap();
    bus_error(&bus)
}

#[test]
fn replay_attaches_each_recorded_frame_and_only_its_own_source() {
    init();
    let recorded = [
        frame(0, 0, vec![person(10.0, 10.0, 0.9)]),
        frame(1, 0, vec![person(300.0, 10.0, 0.8)]),
        frame(
            0,
            2,
            vec![person(12.0, 10.0, 0.7), person(200.0, 50.0, 0.6)],
        ),
    ];
    let path = temp_file("dets.jsonl", &jsonl(&recorded));
    let mut h = replay_harness(&path, 0);
    // Frame 1 has no line: it passes without detections, even if it came with some.
    let stray = frame(0, 1, vec![person(1.0, 1.0, 1.0)]);
    let outputs: Vec<Option<Detections>> = (0..3)
        .map(|n| {
            let input = if n == 1 { Some(&stray) } else { None };
            let out = h.push_and_pull(buffer(input, n)).unwrap();
            Detections::from_buffer(&out)
        })
        .collect();
    assert_eq!(
        outputs,
        vec![Some(recorded[0].clone()), None, Some(recorded[2].clone())]
    );

    let mut h = replay_harness(&path, 1);
    let out = h.push_and_pull(buffer(None, 0)).unwrap();
    assert_eq!(Detections::from_buffer(&out), Some(recorded[1].clone()));
}

#[test]
fn replay_follows_recorded_timestamps_through_seeks_and_loops() {
    init();
    let recorded: Vec<Detections> = (0..5)
        .map(|n| frame(0, n, vec![person(10.0 * n as f32, 10.0, 0.9)]))
        .collect();
    let text: String = recorded
        .iter()
        .map(|d| d.to_json(Some(d.frame_number * FRAME_NS)).to_string() + "\n")
        .collect();
    let path = temp_file("dets-pts.jsonl", &text);
    let mut h = replay_harness(&path, 0);
    // Frames 0 to 2, then back to 1 (a seek) and on to 4, then 0 again (a loop).
    let got: Vec<Option<u64>> = [0, 1, 2, 1, 4, 0]
        .iter()
        .map(|&n| {
            let out = h.push_and_pull(buffer(None, n)).unwrap();
            Detections::from_buffer(&out).map(|d| d.frame_number)
        })
        .collect();
    assert_eq!(got, [0, 1, 2, 1, 4, 0].map(Some));
    // A timestamp not recorded: the count goes on from the last frame found (0).
    let out = h.push_and_pull(buffer(None, 100)).unwrap();
    assert_eq!(Detections::from_buffer(&out), Some(recorded[1].clone()));
}

#[test]
fn replay_errors_name_the_file_and_line() {
    init();
    let good = frame(0, 0, vec![person(10.0, 10.0, 0.9)])
        .to_json(None)
        .to_string();
    for (text, expected) in [
        (format!("{good}\n{{not json\n"), ":2: not JSON"),
        (
            format!(
                "{good}\n\n{}\n",
                good.replace("\"x\":10.0", "\"x\":\"ten\"")
            ),
            ":3: objects[0]: object without a number \"x\"",
        ),
        (
            format!("{good}\n{good}\n"),
            ":2: frame 0 of source 0 is recorded twice",
        ),
    ] {
        let path = temp_file("bad.jsonl", &text);
        let element = gst::ElementFactory::make("rtdetreplay")
            .property("location", path.to_str().unwrap())
            .build()
            .unwrap();
        let error = start_error(&element);
        let wanted = format!("{}{expected}", path.display());
        assert!(
            error.contains(&wanted),
            "{error:?} should contain {wanted:?}"
        );
    }
    // No file, and no location at all.
    for location in [Some("/nonexistent/dets.jsonl"), None] {
        let element = gst::ElementFactory::make("rtdetreplay").build().unwrap();
        element.set_property("location", location);
        let error = start_error(&element);
        let wanted = match location {
            Some(l) => format!("Could not read the detections file {l}"),
            None => "set the location property".to_string(),
        };
        assert!(error.contains(&wanted), "{error}");
    }
}

#[test]
fn replay_scales_boxes_to_the_same_video_scaled() {
    init();
    let mut recorded = frame(0, 0, vec![person(100.0, 40.0, 0.9)]);
    recorded.width = 1280;
    recorded.height = 960;
    let path = temp_file("scaled.jsonl", &jsonl(&[recorded]));
    let mut h = replay_harness(&path, 0);
    let out = h.push_and_pull(buffer(None, 0)).unwrap();
    let d = Detections::from_buffer(&out).unwrap();
    assert_eq!((d.width, d.height), (640, 480));
    let o = &d.objects[0];
    assert_eq!((o.x, o.y, o.w, o.h), (50.0, 20.0, 20.0, 50.0));
}

#[test]
fn replay_refuses_a_video_of_another_size() {
    init();
    let mut recorded = frame(0, 0, vec![person(10.0, 10.0, 0.9)]);
    recorded.width = 1280;
    recorded.height = 720;
    let path = temp_file("hd.jsonl", &jsonl(&[recorded]));
    let mut h = replay_harness(&path, 0);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    assert_eq!(h.push(buffer(None, 0)), Err(gst::FlowError::Error));
    let error = bus_error(&bus);
    assert!(
        error.contains("was recorded at 1280x720, but this video is 640x480"),
        "{error}"
    );
}

fn track_harness(props: &[(&str, glib::Value)]) -> Harness {
    harness("rttrack", props)
}

fn track_ids(out: &gst::Buffer) -> Vec<Option<u64>> {
    Detections::from_buffer(out)
        .unwrap()
        .objects
        .iter()
        .map(|o| o.track_id)
        .collect()
}

#[test]
fn sources_have_their_own_tracks_and_ids() {
    init();
    let mut h = track_harness(&[]);
    let mut ids = Vec::new();
    for n in 0..10u64 {
        let x = 100.0 + 5.0 * n as f32;
        // Source 1 first sees two objects, source 0 one: each numbers its own from 1.
        for (source, objects) in [
            (1, vec![person(x, 50.0, 0.9), person(400.0, 50.0, 0.8)]),
            (0, vec![person(x, 50.0, 0.9)]),
        ] {
            let out = h
                .push_and_pull(buffer(Some(&frame(source, n, objects)), n))
                .unwrap();
            ids.push((source, track_ids(&out)));
        }
    }
    assert_eq!(
        ids[0],
        (1, vec![None, None]),
        "on probation in the first frame"
    );
    assert_eq!(ids[2], (1, vec![Some(1), Some(2)]));
    assert_eq!(ids[3], (0, vec![Some(1)]));
    assert_eq!(ids[19], (0, vec![Some(1)]));
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u32>("sources").unwrap(), 2);
    assert_eq!(stats.get::<u64>("active-tracks").unwrap(), 3);
    assert_eq!(stats.get::<u64>("started").unwrap(), 3);
}

#[test]
fn stale_frames_get_the_predicted_boxes() {
    init();
    let mut h = track_harness(&[]);
    // 250 px/s to the right: 10 px per frame at 25 fps.
    // A second detector's object too weak to start a track (below new-track-threshold).
    let weak = || Detection {
        producer: Some("faces".into()),
        ..person(400.0, 300.0, 0.3)
    };
    for n in 0..20u64 {
        let d = frame(0, n, vec![person(10.0 * n as f32, 100.0, 0.9), weak()]);
        h.push_and_pull(buffer(Some(&d), n)).unwrap();
    }
    // rtinfer's interval: frame 20 carries frame 19's detections, flagged stale.
    let mut copied = frame(0, 20, vec![person(190.0, 100.0, 0.9), weak()]);
    copied.stale = true;
    let out = h.push_and_pull(buffer(Some(&copied), 20)).unwrap();
    let d = Detections::from_buffer(&out).unwrap();
    assert!(d.stale);
    assert_eq!(
        d.objects.len(),
        2,
        "untracked objects stay: {:?}",
        d.objects
    );
    let o = &d.objects[0];
    assert_eq!((o.track_id, o.label.as_str()), (Some(1), "person"));
    assert!(
        (o.x - 200.0).abs() < 4.0,
        "predicted x {} (copied 190, true 200)",
        o.x
    );
    assert_eq!(d.objects[1], weak(), "as last seen, with its producer");
}

#[test]
fn track_messages_tell_when_tracks_start_and_end() {
    init();
    let mut h = track_harness(&[
        ("track-messages", true.to_value()),
        ("lost-timeout", 200u32.to_value()),
    ]);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    for n in 0..10u64 {
        let d = frame(3, n, vec![person(100.0, 100.0, 0.9)]);
        h.push_and_pull(buffer(Some(&d), n)).unwrap();
    }
    // The object leaves; 300 ms later (past the 200 ms timeout) the track has ended.
    for n in 10..18u64 {
        h.push_and_pull(buffer(Some(&frame(3, n, vec![])), n))
            .unwrap();
    }
    let messages: Vec<gst::Structure> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| m.structure().map(|s| s.to_owned()))
        .filter(|s| s.name() == "rttrack-track")
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let (started, ended) = (&messages[0], &messages[1]);
    assert_eq!(started.get::<&str>("event").unwrap(), "started");
    assert_eq!(started.get::<u32>("source-id").unwrap(), 3);
    assert_eq!(started.get::<u64>("track-id").unwrap(), 1);
    assert_eq!(started.get::<&str>("label").unwrap(), "person");
    assert_eq!(
        started.get::<gst::ClockTime>("time").unwrap(),
        gst::ClockTime::ZERO
    );
    assert_eq!(ended.get::<&str>("event").unwrap(), "ended");
    assert_eq!(
        ended.get::<gst::ClockTime>("duration").unwrap(),
        gst::ClockTime::from_nseconds(9 * FRAME_NS)
    );
    // At the end of the stream every track ends.
    for n in 18..21u64 {
        let d = frame(3, n, vec![person(300.0, 100.0, 0.9)]);
        h.push_and_pull(buffer(Some(&d), n)).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let ended: Vec<u64> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| m.structure().map(|s| s.to_owned()))
        .filter(|s| s.get::<&str>("event").ok() == Some("ended"))
        .map(|s| s.get::<u64>("track-id").unwrap())
        .collect();
    assert_eq!(ended, vec![2]);
}

#[test]
fn a_new_frame_size_ends_the_tracks_of_its_source() {
    init();
    let mut h = track_harness(&[("track-messages", true.to_value())]);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    let mut last = Vec::new();
    for n in 0..10u64 {
        let mut d = frame(0, n, vec![person(100.0, 100.0, 0.9)]);
        if n >= 5 {
            // The camera switches to 1280x960: the same spot in pixels is another place.
            (d.width, d.height) = (1280, 960);
        }
        let out = h.push_and_pull(buffer(Some(&d), n)).unwrap();
        last = track_ids(&out);
    }
    let events: Vec<(String, u64)> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| m.structure().map(|s| s.to_owned()))
        .filter(|s| s.name() == "rttrack-track")
        .map(|s| {
            (
                s.get::<&str>("event").unwrap().to_owned(),
                s.get::<u64>("track-id").unwrap(),
            )
        })
        .collect();
    let owned = |e: &str, id| (e.to_owned(), id);
    assert_eq!(
        events,
        vec![owned("started", 1), owned("ended", 1), owned("started", 2)]
    );
    assert_eq!(last, vec![Some(2)]);
}

#[test]
fn frames_without_detections_pass_untouched_and_bad_settings_are_refused() {
    init();
    let mut h = track_harness(&[]);
    let out = h.push_and_pull(buffer(None, 0)).unwrap();
    assert!(Detections::from_buffer(&out).is_none());

    let element = gst::ElementFactory::make("rttrack")
        .property("low-threshold", 0.7f32)
        .property("high-threshold", 0.5f32)
        .build()
        .unwrap();
    let error = start_error(&element);
    assert!(
        error.contains("low-threshold (0.7) is above high-threshold (0.5)"),
        "{error}"
    );
}
