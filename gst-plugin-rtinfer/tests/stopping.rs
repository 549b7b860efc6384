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
