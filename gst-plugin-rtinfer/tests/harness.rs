//! gst_check::Harness tests of each element on synthetic frames.

mod common;
use common::*;
use gst::prelude::*;
use gst_check::Harness;
use rtmeta::{ChannelOrder, DType, Detection, Detections, Layout, TensorMeta};
use std::str::FromStr;

const CAPS: &str = "video/x-raw,format=RGB,width=64,height=48,framerate=10/1";

/// A 64x48 RGB frame whose pixel (x, y) is (x, y, 200).
fn frame(pts_s: u64) -> gst::Buffer {
    let mut data = vec![0u8; 64 * 48 * 3];
    for y in 0..48 {
        for x in 0..64 {
            let o = (y * 64 + x) * 3;
            data[o..o + 3].copy_from_slice(&[x as u8, y as u8, 200]);
        }
    }
    let mut b = gst::Buffer::from_mut_slice(data);
    b.get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_seconds(pts_s));
    b
}

#[test]
fn rtpreprocess_attaches_the_tensor_its_properties_ask_for() {
    init();
    let e = gst::ElementFactory::make("rtpreprocess")
        .property("width", 32u32)
        .property("height", 32u32)
        .property_from_str("letterbox", "center")
        .property_from_str("channel-order", "rgb")
        .property_from_str("layout", "nhwc")
        .property_from_str("dtype", "u8")
        .property("pad-value", 7i32)
        .build()
        .unwrap();
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str(CAPS);
    let input = frame(0);
    let out = h.push_and_pull(input.clone()).unwrap();
    // The frame itself is untouched.
    assert_eq!(*out.map_readable().unwrap(), *input.map_readable().unwrap());
    let t = TensorMeta::from_buffer(&out).expect("tensor meta");
    assert_eq!(
        (t.width, t.height, t.dtype, t.layout, t.channel_order),
        (32, 32, DType::U8, Layout::Nhwc, ChannelOrder::Rgb)
    );
    // 64x48 -> 32x24, centred: 4 rows of padding above.
    assert_eq!(
        (
            t.transform.pad_left,
            t.transform.pad_top,
            t.transform.scale_x
        ),
        (0.0, 4.0, 0.5)
    );
    let data = t.data.map_readable().unwrap();
    assert_eq!(&data[0..3], &[7, 7, 7], "padding row");
    let px = |x: usize, y: usize| &data[(y * 32 + x) * 3..(y * 32 + x) * 3 + 3];
    // Output (10, 4 + 5) samples source (20.5, 10.5): mean of x 20..21 and y 10..11.
    assert_eq!(px(10, 9), &[21, 11, 200]);
}

#[test]
fn rtpreprocess_takes_its_settings_from_the_model_downstream() {
    init();
    let line = format!(
        "rtpreprocess ! rtinfer keep-tensor=true model-file={}",
        model("yolov8n_int8_dynamic.onnx")
    );
    let mut h = Harness::new_parse(&line);
    h.set_src_caps_str(CAPS);
    let out = h.push_and_pull(frame(0)).unwrap();
    let t = TensorMeta::from_buffer(&out).expect("tensor kept");
    assert_eq!(
        (t.width, t.height, t.channel_order, t.dtype),
        (640, 640, ChannelOrder::Rgb, DType::F32)
    );
    assert_eq!(t.transform.pad_top, 80.0); // centred, as Ultralytics
    let map = t.data.map_readable().unwrap();
    let v = gstrtinfer::convert::cast::<f32>(&map).unwrap()[0];
    assert!((v - 114.0 / 255.0).abs() < 1e-6, "{v}");
    assert!(Detections::from_buffer(&out).is_some());

    // Without keep-tensor, rtinfer drops the tensor once it has used it.
    let line = format!(
        "rtpreprocess ! rtinfer model-file={}",
        model("yolox_nano.onnx")
    );
    let mut h = Harness::new_parse(&line);
    h.set_src_caps_str(CAPS);
    let out = h.push_and_pull(frame(0)).unwrap();
    assert!(TensorMeta::from_buffer(&out).is_none());
    assert!(Detections::from_buffer(&out).is_some());
}

#[test]
fn rtinfer_asks_upstream_for_the_buffers_it_holds() {
    init();
    for (interval, held) in [(1u32, 5u32), (3, 15)] {
        let e = gst::ElementFactory::make("rtinfer")
            .property("model-file", model("yolox_nano.onnx"))
            .property("requests", 2u32)
            .property("interval", interval)
            .build()
            .unwrap();
        let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
        h.set_src_caps_str(CAPS);
        let caps = gst::Caps::from_str(CAPS).unwrap();
        let mut q = gst::query::Allocation::new(Some(&caps), true);
        assert!(h.srcpad().unwrap().peer_query(&mut q));
        // Downstream (the harness) proposes no pool: rtinfer adds one for the frame size with
        // its own count, 2 requests x 2 + 1 frames in flight, times `interval`.
        let pools: Vec<_> = q
            .allocation_pools()
            .map(|(_, size, min, max)| (size, min, max))
            .collect();
        assert_eq!(pools, vec![(64 * 48 * 3, held, 0)], "interval {interval}");
    }
}

#[test]
fn rtinfer_adds_what_a_frame_waits_to_upstreams_latency() {
    init();
    let e = gst::ElementFactory::make("rtinfer")
        .property("model-file", model("yolox_nano.onnx"))
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str(CAPS);
    let upstream = gst::ClockTime::from_mseconds(40);
    h.set_upstream_latency(upstream);
    // Two runs of the model, as timed when it loaded.
    let two_runs = h.query_latency().unwrap() - upstream;
    assert!(two_runs > gst::ClockTime::ZERO);
    // With max-latency, that bound and one run; the pipeline is told to ask again.
    let latency_messages = |bus: &gst::Bus| {
        std::iter::from_fn(|| bus.pop())
            .filter(|m| m.type_() == gst::MessageType::Latency)
            .count()
    };
    assert_eq!(latency_messages(&bus), 0);
    e.set_property("max-latency", 300u32);
    assert_eq!(latency_messages(&bus), 1);
    let bounded = h.query_latency().unwrap() - upstream;
    assert_eq!(
        (bounded - gst::ClockTime::from_mseconds(300)).nseconds(),
        two_runs.nseconds() / 2
    );
}

#[test]
fn rtinfer_interval_marks_copied_detections_stale() {
    init();
    let e = gst::ElementFactory::make("rtinfer")
        .property("model-file", model("yolox_nano.onnx"))
        .property("interval", 3u32)
        .property("source-id", 7u32)
        .build()
        .unwrap();
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str(CAPS);
    let got: Vec<(u64, bool, u32)> = (0..5)
        .map(|i| {
            let out = h.push_and_pull(frame(i)).unwrap();
            let d = Detections::from_buffer(&out).unwrap();
            (d.frame_number, d.stale, d.source_id)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, false, 7),
            (1, true, 7),
            (2, true, 7),
            (3, false, 7),
            (4, true, 7)
        ]
    );
    // A lower interval applies from the next frame (frame 5 would wait for frame 6 else).
    e.set_property("interval", 1u32);
    let out = h.push_and_pull(frame(5)).unwrap();
    assert!(!Detections::from_buffer(&out).unwrap().stale);
    let stats = e.property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("frames").unwrap(), 6);
    assert_eq!(stats.get::<u64>("inferences").unwrap(), 3);
    assert!(stats.get::<f64>("p95-inference-ms").unwrap() > 0.0);
}

#[test]
fn rtinfer_posts_stats_and_filters_classes() {
    init();
    let line = format!(
        "filesrc location={DARKNET}/dog.jpg ! jpegdec ! videoconvert ! imagefreeze num-buffers=3 ! \
         rtinfer classes=dog,car stats-interval=1 model-file={} ! appsink name=out",
        model("yolox_nano.onnx")
    );
    let pipeline = {
        init();
        launch_pipeline(&line)
    };
    let sink = appsink(&pipeline, "out");
    let labels = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = labels.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().unwrap();
                let d = Detections::from_buffer(sample.buffer().unwrap()).unwrap();
                l.lock()
                    .unwrap()
                    .extend(d.objects.into_iter().map(|o| o.label));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let (end, messages) = run(&pipeline);
    assert!(matches!(end, End::Eos), "{end:?}");
    let labels = labels.lock().unwrap();
    assert_eq!(labels.len(), 6, "{labels:?}"); // dog and car in each of 3 frames
    assert!(
        labels.iter().all(|l| l == "dog" || l == "car"),
        "{labels:?}"
    );
    let stats: Vec<_> = messages
        .iter()
        .filter(|s| s.name() == "rtinfer-stats")
        .collect();
    assert!(stats.len() >= 2, "periodic and EOS stats: {stats:?}");
    let last = stats.last().unwrap();
    assert_eq!(last.get::<u64>("frames").unwrap(), 3);
    assert_eq!(last.get::<u64>("detections").unwrap(), 6);
}

#[test]
fn rtjsonenc_writes_one_line_per_frame_with_detections() {
    init();
    let mut h = Harness::new("rtjsonenc");
    h.set_src_caps_str(CAPS);
    let mut b = frame(2);
    Detections {
        source_id: 1,
        frame_number: 20,
        width: 64,
        height: 48,
        stale: false,
        objects: vec![Detection {
            class_id: 0,
            label: "person".into(),
            confidence: 0.87654,
            x: 1.0,
            y: 2.0,
            w: 3.0,
            h: 4.5,
            track_id: Some(9),
            producer: None,
        }],
    }
    .attach(b.get_mut().unwrap())
    .unwrap();
    let out = h.push_and_pull(b).unwrap();
    let text = String::from_utf8(out.map_readable().unwrap().to_vec()).unwrap();
    assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["source_id"], 1);
    assert_eq!(v["frame"], 20);
    assert_eq!(v["pts"], 2_000_000_000u64);
    assert_eq!(v["objects"][0]["label"], "person");
    assert_eq!(v["objects"][0]["confidence"], 0.8765);
    assert_eq!(v["objects"][0]["track_id"], 9);
    assert_eq!(out.pts(), Some(gst::ClockTime::from_seconds(2)));
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(caps.structure(0).unwrap().name(), "application/x-ndjson");

    // A frame without detection metadata gives no line, but a gap that moves time on, so
    // a sink downstream still prerolls and syncs.
    h.push(frame(3)).unwrap();
    assert!(h.try_pull().is_none());
    let gap = std::iter::from_fn(|| h.try_pull_event())
        .find(|e| e.type_() == gst::EventType::Gap)
        .expect("a gap event for the frame");
    let gst::EventView::Gap(gap) = gap.view() else {
        unreachable!()
    };
    assert_eq!(gap.get().0, gst::ClockTime::from_seconds(3));
}

#[test]
fn rtjsonenc_beside_a_playing_branch_prerolls_without_detections() {
    init();
    // No rtinfer: no frame has detections. Before gaps, the JSON sink never prerolled and
    // the pipeline never reached PLAYING.
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=20 ! video/x-raw,framerate=100/1 ! tee name=t \
         t. ! queue ! rtjsonenc ! fakesink sync=true t. ! queue ! fakesink sync=true",
    )
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline.bus().unwrap().timed_pop_filtered(
        gst::ClockTime::from_seconds(20),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(msg.map(|m| m.type_()), Some(gst::MessageType::Eos));
}

#[test]
fn elements_that_read_pixels_refuse_the_crop_meta_downstream_offers() {
    init();
    // A sink that takes GstVideoCropMeta (kmssink does) would make videocrop upstream crop
    // by a meta these elements do not read: they keep it out of the query.
    let asks_crop = |e: &gst::Element| {
        let mut h = Harness::with_element(e, Some("sink"), Some("src"));
        h.add_propose_allocation_meta(gst_video::VideoCropMeta::meta_api(), None);
        h.set_src_caps_str(CAPS);
        h.push_and_pull(frame(0)).unwrap();
        let caps = gst::Caps::from_str(CAPS).unwrap();
        let mut q = gst::query::Allocation::new(Some(&caps), true);
        assert!(h.srcpad().unwrap().peer_query(&mut q));
        q.find_allocation_meta::<gst_video::VideoCropMeta>()
            .is_some()
    };
    let make = |name: &str| gst::ElementFactory::make(name).build().unwrap();
    assert!(asks_crop(&make("identity")), "the harness offers it");
    assert!(!asks_crop(&make("rtpreprocess")));
    let infer = gst::ElementFactory::make("rtinfer")
        .property("model-file", model("yolox_nano.onnx"))
        .build()
        .unwrap();
    assert!(!asks_crop(&infer));
}

#[test]
fn after_downstream_eos_a_new_segment_lets_frames_flow_again() {
    init();
    let line = format!("rtinfer model-file={}", model("yolox_nano.onnx"));
    let mut h = Harness::new_parse(&line);
    h.set_src_caps_str(CAPS);
    // Downstream is done (returns EOS) until it sees a second segment, as a sink is.
    let segments = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = segments.clone();
    h.element().unwrap().static_pad("src").unwrap().add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            use std::sync::atomic::Ordering::SeqCst;
            match &info.data {
                Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::Segment => {
                    seen.fetch_add(1, SeqCst);
                    gst::PadProbeReturn::Ok
                }
                Some(gst::PadProbeData::Buffer(_)) if seen.load(SeqCst) < 2 => {
                    info.flow_res = Err(gst::FlowError::Eos);
                    gst::PadProbeReturn::Handled
                }
                _ => gst::PadProbeReturn::Ok,
            }
        },
    );
    let mut eos_seen = false;
    for n in 0..20 {
        if h.push(frame(n)) == Err(gst::FlowError::Eos) {
            eos_seen = true;
            break;
        }
    }
    assert!(eos_seen, "downstream's EOS reached upstream");
    while h.try_pull().is_some() {}
    // A new segment without a flush (a source switching files): frames go out again.
    assert!(
        h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()))
    );
    for n in 0..3 {
        h.push(frame(100 + n))
            .expect("frames after the new segment are taken");
    }
    for n in 0..3 {
        let out = h.pull().expect("a frame after the new segment");
        assert_eq!(out.pts(), Some(gst::ClockTime::from_seconds(100 + n)));
        assert!(Detections::from_buffer(&out).is_some());
    }
}
