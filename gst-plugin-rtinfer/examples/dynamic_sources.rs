//! Adds and removes sources while one batched rtinfer keeps running.
//!
//!   cargo run --release --example dynamic_sources -- [ROUNDS] [VIDEO] [MODEL]
//!
//! A live test source runs all the time on `sink_100`; every round a copy of VIDEO is added
//! on a new request pad, runs for a second, and is removed again (pad released, elements
//! dropped). Prints the frames each stream got and the process memory.
//!
//! Sources added to a running pipeline should be live (like `rturisrcbin`, used here): an
//! element that prerolls (`uridecodebin`) makes a PLAYING pipeline wait for it.

use gst::prelude::*;
use rttest::rss_kib;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let rounds: u32 = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    let video = args
        .get(2)
        .cloned()
        .unwrap_or("/usr/share/doc/opencv-doc/examples/data/vtest.avi".into());
    let shared = std::env::var("RT_SHARED").unwrap_or("../shared".into());
    let model = args
        .get(3)
        .cloned()
        .unwrap_or(format!("{shared}/models/yolox_nano.onnx"));
    gst::init()?;
    gstrtinfer::plugin_register_static()?;
    gstrtsrc::plugin_register_static()?;

    let pipeline = gst::parse::launch(&format!(
        "rtinfer name=infer model-file={model} batch-size=2 \
         videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=10/1 ! infer.sink_100 \
         infer.src_100 ! fakesink name=main"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let infer = pipeline.by_name("infer").ok_or("no rtinfer")?;
    pipeline.set_state(gst::State::Playing)?;

    for round in 1..=rounds {
        // Add: uridecodebin ! videoconvert ! infer.sink_N, infer.src_N ! fakesink.
        let bin = gst::parse::bin_from_description(
            &format!("rturisrcbin uri=file://{video} restart-on-eos=false ! videoconvert ! queue"),
            true,
        )?;
        let sink = gst::ElementFactory::make("fakesink")
            .property("async", false)
            .build()?;
        pipeline.add_many([bin.upcast_ref::<gst::Element>(), &sink])?;
        let sinkpad = infer
            .request_pad_simple("sink_%u")
            .ok_or("no request pad")?;
        bin.static_pad("src").ok_or("no src")?.link(&sinkpad)?;
        let srcpad = infer
            .static_pad(&sinkpad.name().replace("sink_", "src_"))
            .ok_or("no src_N")?;
        srcpad.link(&sink.static_pad("sink").ok_or("no sink pad")?)?;
        let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let f = frames.clone();
        srcpad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            f.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
        sink.sync_state_with_parent()?;
        bin.sync_state_with_parent()?;
        std::thread::sleep(Duration::from_secs(1));

        // Remove: stop the branch, release the pad, drop the elements.
        bin.set_state(gst::State::Null)?;
        sink.set_state(gst::State::Null)?;
        infer.release_request_pad(&sinkpad);
        pipeline.remove_many([bin.upcast_ref::<gst::Element>(), &sink])?;
        let bus = pipeline.bus().ok_or("no bus")?;
        while let Some(msg) = bus.pop() {
            match msg.view() {
                gst::MessageView::Error(e) => eprintln!("error: {} ({:?})", e.error(), e.debug()),
                gst::MessageView::Warning(w) => eprintln!("warning: {}", w.error()),
                _ => {}
            }
        }
        println!(
            "round {round}: {} got {} frames; RSS {} KiB",
            sinkpad.name(),
            frames.load(std::sync::atomic::Ordering::Relaxed),
            rss_kib()
        );
    }
    let stats = infer.property::<gst::Structure>("stats");
    println!("main stream and the others: {stats}");
    pipeline.set_state(gst::State::Null)?;
    Ok(())
}
