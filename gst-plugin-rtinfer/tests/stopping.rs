//! Stopping rtinfer while frames are on their way to the model. Its own test binary: it
//! churns through large frames, which would disturb the RSS measurement in batching.rs.

mod common;
use common::*;
use gst::prelude::*;
use std::time::Duration;

#[test]
fn stopping_while_frames_are_on_their_way_never_hangs() {
    init();
    // Large frames keep each streaming thread busy converting for a few ms before it hands
    // its frame to the batcher; stopping in that window once left the thread waiting for a
    // result that the stopped inference thread would never deliver, and set_state hung.
    let line = format!(
        "rtinfer name=i batch-size=2 model-file={} \
         videotestsrc ! video/x-raw,format=RGB,width=1920,height=1080 ! i.sink_0 \
         videotestsrc pattern=ball ! video/x-raw,format=RGB,width=1920,height=1080 ! i.sink_1 \
         i.src_0 ! fakesink i.src_1 ! fakesink",
        model("yolox_nano.onnx"),
    );
    for round in 0..30 {
        let pipeline = launch_pipeline(&line);
        let infer = pipeline.by_name("i").unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        // Stop after a varying number of frames, so the stop lands at varying points.
        wait_until(&format!("round {round}: frames"), 30, || {
            infer
                .property::<gst::Structure>("stats")
                .get::<u64>("frames")
                .unwrap()
                >= 2 + round % 5
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let p = pipeline.clone();
        std::thread::spawn(move || {
            let _ = tx.send(p.set_state(gst::State::Null));
        });
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("round {round}: stopping hung"))
            .unwrap();
    }
}

/// Runs `line` to its end and returns it, failing if it neither finishes nor fails within
/// 30 s (the cases below once waited forever: a frame waiting for room in rtinfer was never
/// told that its stream's output had stopped).
fn ends(pipeline: &gst::Pipeline) -> End {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = pipeline.clone();
    std::thread::spawn(move || {
        let _ = tx.send(run(&p).0);
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the pipeline neither finished nor failed"))
}

#[test]
fn a_sink_that_wants_no_more_ends_the_stream() {
    init();
    // fakesink returns EOS after one frame: like queue, rtinfer drops the frames it holds,
    // returns EOS upstream and still lets the EOS event through, so the pipeline ends.
    let end = ends(&launch_pipeline(&format!(
        "videotestsrc num-buffers=60 ! rtinfer model-file={} ! fakesink num-buffers=1",
        model("yolox_nano.onnx")
    )));
    assert!(matches!(end, End::Eos), "{end:?}");
}

#[test]
fn a_downstream_flow_error_reaches_upstream() {
    init();
    // The second identity fails on the 5th frame, which the first holds for 50 ms: by
    // then the source waits in rtinfer for room again, and reports the error only once
    // that wait gives it back.
    let pipeline = launch_pipeline(&format!(
        "videotestsrc name=src num-buffers=200 ! rtinfer model-file={} ! identity \
         sleep-time=50000 ! identity error-after=5 ! fakesink",
        model("yolox_nano.onnx")
    ));
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let source_error = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64)) else {
            panic!("the source never heard of the downstream error");
        };
        if let gst::MessageView::Error(e) = msg.view()
            && msg.src().is_some_and(|s| s.name() == "src")
        {
            break e.debug().map(|d| d.to_string()).unwrap_or_default();
        }
    };
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        source_error.contains("streaming stopped, reason error"),
        "{source_error}"
    );
}

#[test]
fn one_stream_whose_sink_wants_no_more_leaves_the_others_going() {
    init();
    let pipeline = launch_pipeline(&format!(
        "rtinfer name=i model-file={} \
         videotestsrc num-buffers=60 ! i.sink_0 i.src_0 ! fakesink num-buffers=1 \
         videotestsrc num-buffers=40 ! i.sink_1 i.src_1 ! fakesink name=rest signal-handoffs=true",
        model("yolox_nano.onnx")
    ));
    let rendered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = rendered.clone();
    pipeline
        .by_name("rest")
        .unwrap()
        .connect("handoff", false, move |_| {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        });
    let end = ends(&pipeline);
    assert!(matches!(end, End::Eos), "{end:?}");
    assert_eq!(rendered.load(std::sync::atomic::Ordering::Relaxed), 40);
}

#[test]
fn a_restart_numbers_frames_from_zero_again() {
    init();
    // Apps that reconnect stop the pipeline and play it again; rtdetreplay and apps match
    // frames by number.
    let pipeline = launch_pipeline(&format!(
        "videotestsrc num-buffers=3 ! rtinfer model-file={} ! fakesink name=out",
        model("yolox_nano.onnx")
    ));
    let numbers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = numbers.clone();
    pipeline
        .by_name("out")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                let d = rtmeta::Detections::from_buffer(b).unwrap();
                seen.lock().unwrap().push(d.frame_number);
            }
            gst::PadProbeReturn::Ok
        });
    for round in 0..2 {
        let (end, _) = run(&pipeline);
        assert!(matches!(end, End::Eos), "round {round}: {end:?}");
        assert_eq!(*numbers.lock().unwrap(), [0, 1, 2], "round {round}");
        numbers.lock().unwrap().clear();
    }
}
