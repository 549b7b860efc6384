//! Throughput of the whole pipeline against ONNX Runtime alone, in the same run.
//!
//!   cargo run --release --example bench -- [VIDEO] [MODEL] [THREADS]
//!
//! Prints frames per second for: decoding alone; the pipeline
//! (decode ! videoconvert ! rtpreprocess ! rtinfer) with and without a queue after the
//! decoder; and the model run back to back on one preprocessed frame with the same thread
//! setting. The ratio pipeline / model-alone is the overhead of everything around inference.

use gst::prelude::*;
use gstrtinfer::backend::{Backend, OnnxBackend, Options, TensorData};
use std::time::Instant;

fn run_pipeline(line: &str) -> (u64, f64, Option<gst::Structure>) {
    let pipeline = gst::parse::launch(line)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = pipeline.by_name("sink").unwrap();
    let c = counter.clone();
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    let start = Instant::now();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut stats = None;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{line}: {} {:?}", e.error(), e.debug()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "rtinfer-stats") {
                    stats = Some(s.to_owned());
                }
            }
            _ => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null).unwrap();
    (
        counter.load(std::sync::atomic::Ordering::Relaxed),
        secs,
        stats,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let video = args
        .get(1)
        .cloned()
        .unwrap_or("/usr/share/doc/opencv-doc/examples/data/vtest.avi".into());
    let shared = std::env::var("RT_SHARED").unwrap_or("../shared".into());
    let model = args
        .get(2)
        .cloned()
        .unwrap_or(format!("{shared}/models/yolox_nano.onnx"));
    let threads: u32 = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(0);

    gst::init().unwrap();
    gstrtinfer::plugin_register_static().unwrap();
    let decode = format!("filesrc location={video} ! decodebin ! videoconvert");
    let infer =
        format!("rtpreprocess ! rtinfer model-file={model} threads={threads} stats-interval=0");

    let (frames, secs, _) = run_pipeline(&format!("{decode} ! fakesink name=sink sync=false"));
    let decode_fps = frames as f64 / secs;
    println!("decode only:            {frames} frames in {secs:.2} s = {decode_fps:.1} fps");

    let mut pipeline_fps = 0.0;
    for (name, q) in [
        ("pipeline:              ", ""),
        ("pipeline, queue:       ", " ! queue"),
    ] {
        let (frames, secs, stats) = run_pipeline(&format!(
            "{decode}{q} ! {infer} ! fakesink name=sink sync=false"
        ));
        let fps = frames as f64 / secs;
        pipeline_fps = f64::max(pipeline_fps, fps);
        let s = stats.expect("rtinfer stats at EOS");
        println!(
            "{name} {frames} frames in {secs:.2} s = {fps:.1} fps (inference mean {:.2} ms, p95 {:.2} ms)",
            s.get::<f64>("mean-inference-ms").unwrap(),
            s.get::<f64>("p95-inference-ms").unwrap()
        );
    }

    // The model alone, same library, same threads, on a letterboxed grey frame.
    let mut backend = OnnxBackend::open(
        model.as_ref(),
        &Options {
            threads,
            library: None,
        },
    )
    .unwrap();
    let info = backend.info().clone();
    let input = vec![114.0f32; (info.width * info.height * 3) as usize];
    let n = frames.max(1);
    let start = Instant::now();
    for _ in 0..n {
        backend
            .run(TensorData::F32(&input), &mut |_, _| {})
            .unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let model_fps = n as f64 / secs;
    println!(
        "model alone ({}): {n} runs in {secs:.2} s = {model_fps:.1} fps",
        backend.describe()
    );
    println!(
        "ratio pipeline / model alone: {:.3}",
        pipeline_fps / model_fps
    );
}
