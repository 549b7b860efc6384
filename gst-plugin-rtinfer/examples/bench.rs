//! Throughput of the whole pipeline against ONNX Runtime alone, in the same run.
//!
//!   cargo run --release --example bench -- [VIDEO] [MODEL] [THREADS] [STREAMS]
//!
//! Prints frames per second for: decoding alone; the pipeline
//! (decode ! videoconvert ! rtpreprocess ! rtinfer) with and without a queue after the
//! decoder; and the model run back to back on one preprocessed frame with the same thread
//! setting. The ratio pipeline / model-alone is the overhead of everything around inference.
//! Then, for 1, 2 and 4 copies of the video (STREAMS=0 skips this): the aggregate fps of
//! one batched rtinfer on request pads against as many separate pipelines run at once.

use gst::prelude::*;
use gstrtinfer::backend::{Backend, OnnxBackend, Options, TensorData};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counts the buffers reaching every element named `sink*`.
fn count_sinks(pipeline: &gst::Pipeline) -> Arc<AtomicU64> {
    let counter = Arc::new(AtomicU64::new(0));
    for e in pipeline.iterate_elements().into_iter().flatten() {
        if !e.name().starts_with("sink") {
            continue;
        }
        let c = counter.clone();
        e.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                c.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
    }
    counter
}

/// Waits for EOS; returns the last rtinfer statistics posted.
fn wait_eos(pipeline: &gst::Pipeline) -> Option<gst::Structure> {
    let mut stats = None;
    for msg in pipeline.bus().unwrap().iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "rtinfer-stats") {
                    stats = Some(s.to_owned());
                }
            }
            _ => {}
        }
    }
    stats
}

/// Runs the launch lines at the same time; returns all frames, the wall time and the last
/// rtinfer statistics of the first pipeline.
fn run_together(lines: &[String]) -> (u64, f64, Option<gst::Structure>) {
    let pipelines: Vec<gst::Pipeline> = lines
        .iter()
        .map(|l| {
            gst::parse::launch(l)
                .unwrap()
                .downcast::<gst::Pipeline>()
                .unwrap()
        })
        .collect();
    let counters: Vec<_> = pipelines.iter().map(count_sinks).collect();
    let start = Instant::now();
    for p in &pipelines {
        p.set_state(gst::State::Playing).unwrap();
    }
    let stats: Vec<_> = pipelines.iter().map(wait_eos).collect();
    let secs = start.elapsed().as_secs_f64();
    for p in &pipelines {
        p.set_state(gst::State::Null).unwrap();
    }
    let frames = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    (frames, secs, stats.into_iter().next().flatten())
}

fn run_pipeline(line: &str) -> (u64, f64, Option<gst::Structure>) {
    run_together(&[line.to_string()])
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
            ..Default::default()
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
    drop(backend);

    let max_streams: usize = args.get(4).and_then(|t| t.parse().ok()).unwrap_or(4);
    for n in [1usize, 2, 4].into_iter().filter(|n| *n <= max_streams) {
        let mut batched = format!(
            "rtinfer name=i model-file={model} threads={threads} batch-size={n} stats-interval=0 "
        );
        for k in 0..n {
            batched += &format!(
                "{decode} ! rtpreprocess ! i.sink_{k} i.src_{k} ! fakesink name=sink{k} sync=false "
            );
        }
        let (frames, secs, stats) = run_together(&[batched]);
        let batched_fps = frames as f64 / secs;
        let mean_batch = stats
            .and_then(|s| s.get::<f64>("mean-batch-size").ok())
            .unwrap_or(0.0);
        let separate: Vec<String> = (0..n)
            .map(|_| format!("{decode} ! {infer} ! fakesink name=sink sync=false"))
            .collect();
        let (frames2, secs2, _) = run_together(&separate);
        let separate_fps = frames2 as f64 / secs2;
        println!(
            "{n} stream(s): one batched rtinfer {frames} frames in {secs:.1} s = {batched_fps:.1} fps \
             (mean batch {mean_batch:.2}); {n} separate pipelines {frames2} frames in {secs2:.1} s = \
             {separate_fps:.1} fps; ratio {:.2}",
            batched_fps / separate_fps
        );
    }
}
