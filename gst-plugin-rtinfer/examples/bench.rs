//! How fast rtinfer is against a plain Python loop and the model alone, in one run.
//!
//!   cargo run --release --example bench -- [VIDEO] [MODEL]
//!   cargo run --release --example bench -- rss SECONDS [VIDEO] [MODEL]
//!
//! Prints, on the same machine and in the same run:
//! - the model alone: ONNX Runtime with 1 session of N threads and with N sessions of 1
//!   thread running at once (N = cores), OpenVINO with N requests in f32 and bf16, and the
//!   best of them;
//! - one stream of the whole video through `decodebin ! videoconvert ! rtpreprocess ! rtinfer`
//!   with the defaults (auto requests and backend: OpenVINO bf16 on CPUs that compute bf16,
//!   else ONNX Runtime f32), with `requests=1` (one inference at a time, as before requests
//!   existed) and with `precision=f32` (exact, ONNX Runtime), against
//!   `scripts/python_loop.py` (cv2 + onnxruntime + numpy);
//! - 4 copies through one rtinfer (defaults, and `precision=f32`) against 4 Python loops
//!   at once;
//! - latency inside rtinfer (arrival to push, from its stats) for three real-time sources of
//!   10, 15 and 25 fps, and for three sources at twice the model's capacity with
//!   `max-latency`;
//!
//! and the ratios. The sides of each comparison take turns, in 5 rounds (single stream: the
//! model alone, rtinfer twice and the Python loop) or 3 (4 streams twice against 4 Python
//! loops),
//! and each side keeps its best round, as the machine's speed drifts.
//!
//! `rss` runs 4 real-time streams for SECONDS and prints the resident memory after 1 minute
//! and at the end.

use gst::prelude::*;
use gstrtinfer::backend::{
    Backend, OnnxBackend, OpenVinoModel, Options, OvOptions, Precision, TensorData,
};
use rttest::rss_kib;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Frames and the time they took, two ways: the whole run (from PLAYING, or from starting
/// the process, so model loading included) and the steady state (from the first frame out
/// to the last, as the model-alone figures exclude loading too).
#[derive(Clone, Copy, Default)]
struct Rate {
    frames: u64,
    secs: f64,
    steady_frames: u64,
    steady_secs: f64,
}

impl Rate {
    fn fps(&self) -> f64 {
        self.frames as f64 / self.secs
    }

    fn steady_fps(&self) -> f64 {
        self.steady_frames as f64 / self.steady_secs
    }

    fn describe(&self) -> String {
        format!(
            "{} frames in {:.2} s = {:.1} fps with start-up, {:.1} fps from the first frame out",
            self.frames,
            self.secs,
            self.fps(),
            self.steady_fps()
        )
    }
}

/// When the buffers reaching the elements named `sink*` arrived: count, first and last.
#[derive(Default)]
struct Arrivals {
    count: AtomicU64,
    first: std::sync::OnceLock<Instant>,
    /// Nanoseconds from `first` to the latest arrival.
    last: AtomicU64,
}

fn watch_sinks(pipeline: &gst::Pipeline) -> Arc<Arrivals> {
    let arrivals = Arc::new(Arrivals::default());
    for e in pipeline.iterate_elements().into_iter().flatten() {
        if !e.name().starts_with("sink") {
            continue;
        }
        let a = arrivals.clone();
        e.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                a.count.fetch_add(1, Ordering::Relaxed);
                let first = *a.first.get_or_init(Instant::now);
                a.last
                    .fetch_max(first.elapsed().as_nanos() as u64, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
    }
    arrivals
}

/// Runs a launch line to EOS, or for `limit`; returns its rate and the last rtinfer
/// statistics.
fn run(line: &str, limit: Option<Duration>) -> (Rate, gst::Structure) {
    let pipeline = gst::parse::launch(line)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let arrivals = watch_sinks(&pipeline);
    let start = Instant::now();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let deadline = limit.map(|l| start + l);
    loop {
        let wait = deadline.map(|d| {
            gst::ClockTime::from_nseconds(
                d.saturating_duration_since(Instant::now()).as_nanos() as u64
            )
        });
        let Some(msg) = bus.timed_pop(wait) else {
            break;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = pipeline
        .by_name("i")
        .map(|i| i.property::<gst::Structure>("stats"))
        .unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    let frames = arrivals.count.load(Ordering::Relaxed);
    let rate = Rate {
        frames,
        secs,
        steady_frames: frames.saturating_sub(1),
        steady_secs: arrivals.last.load(Ordering::Relaxed) as f64 / 1e9,
    };
    (rate, stats)
}

fn f(s: &gst::Structure, field: &str) -> f64 {
    s.get::<f64>(field).unwrap_or(0.0)
}

/// Runs `n` ONNX Runtime sessions of `threads` threads at once for `runs` runs each;
/// returns inferences per second in all.
fn model_alone(model: &str, sessions: usize, threads: u32, runs: usize) -> f64 {
    let backends: Vec<Box<dyn Backend>> = (0..sessions)
        .map(|_| {
            let b = OnnxBackend::open(
                model.as_ref(),
                &Options {
                    threads,
                    ..Default::default()
                },
            )
            .unwrap();
            Box::new(b) as Box<dyn Backend>
        })
        .collect();
    run_at_once(backends, runs)
}

/// OpenVINO in throughput mode: one compiled model, `requests` requests at once.
fn openvino_alone(model: &str, requests: usize, precision: Precision, runs: usize) -> f64 {
    let compiled = OpenVinoModel::open(
        model.as_ref(),
        &OvOptions {
            precision,
            requests: requests as u32,
            ..Default::default()
        },
    )
    .unwrap();
    let backends = (0..requests)
        .map(|_| Box::new(compiled.request().unwrap()) as Box<dyn Backend>)
        .collect();
    run_at_once(backends, runs)
}

/// Runs every backend `runs` times, all at once; returns inferences per second in all.
fn run_at_once(mut backends: Vec<Box<dyn Backend>>, runs: usize) -> f64 {
    let sessions = backends.len();
    let info = backends[0].info().clone();
    let input = vec![114.0f32; (info.width * info.height * 3) as usize];
    let start = Instant::now();
    std::thread::scope(|scope| {
        for b in &mut backends {
            let input = &input;
            scope.spawn(move || {
                for _ in 0..runs {
                    b.run(TensorData::F32(input), &mut |_, _| {}).unwrap();
                }
            });
        }
    });
    (sessions * runs) as f64 / start.elapsed().as_secs_f64()
}

/// Runs `n` Python loops at once; returns their rate in all (steady state: from the first
/// frame any loop finished to the last).
fn python_loops(n: usize, video: &str, model: &str) -> Rate {
    let venv = std::env::var_os("RT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".local/share/rtinfer/venv")
        });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/python_loop.py");
    let start = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|_| {
            std::process::Command::new(venv.join("bin/python"))
                .arg(&script)
                .arg(video)
                .arg(model)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("the Python loop needs the setup's venv with opencv (scripts/test.sh installs it)")
        })
        .collect();
    let (mut rate, mut first, mut last) = (Rate::default(), f64::INFINITY, 0f64);
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // "steady FRAMES_AFTER_FIRST FIRST_TIME LAST_TIME" (wall-clock seconds).
        let steady: Vec<f64> = text
            .lines()
            .find_map(|l| l.strip_prefix("steady "))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let [after_first, t0, t1] = steady[..] else {
            panic!("python loop failed: {text}");
        };
        rate.frames += after_first as u64 + 1;
        rate.steady_frames += after_first as u64;
        (first, last) = (first.min(t0), last.max(t1));
    }
    rate.secs = start.elapsed().as_secs_f64();
    rate.steady_secs = last - first;
    rate
}

/// `k` real-time copies of the video at `fps` each into one rtinfer named `i`.
fn live_sources(video: &str, rates: &[u32], infer: &str) -> String {
    let mut line = format!("{infer} ");
    for (k, fps) in rates.iter().enumerate() {
        line += &format!(
            "filesrc location={video} ! decodebin ! videorate ! video/x-raw,framerate={fps}/1 \
             ! identity sync=true ! videoconvert ! rtpreprocess ! i.sink_{k} \
             i.src_{k} ! fakesink name=sink{k} sync=false "
        );
    }
    line
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (rss_secs, args) = match args.first().map(String::as_str) {
        Some("rss") => (args.get(1).and_then(|s| s.parse::<u64>().ok()), &args[2..]),
        _ => (None, &args[..]),
    };
    let video = args
        .first()
        .cloned()
        .unwrap_or("/usr/share/doc/opencv-doc/examples/data/vtest.avi".into());
    let shared = std::env::var("RT_SHARED").unwrap_or("../shared".into());
    let model = args
        .get(1)
        .cloned()
        .or_else(|| std::env::var("RT_MODEL").ok())
        .unwrap_or(format!("{shared}/models/yolox_nano.onnx"));
    gst::init().unwrap();
    gstrtinfer::plugin_register_static().unwrap();
    let infer = format!("rtinfer name=i model-file={model} stats-interval=0");

    if let Some(secs) = rss_secs {
        let line = live_sources(&video, &[10, 10, 10, 10], &infer);
        let pipeline = gst::parse::launch(&line.replace("filesrc", "multifilesrc loop=true"))
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(60.min(secs)));
        let after_1min = rss_kib();
        std::thread::sleep(Duration::from_secs(secs.saturating_sub(60)));
        let at_end = rss_kib();
        let stats = pipeline
            .by_name("i")
            .unwrap()
            .property::<gst::Structure>("stats");
        pipeline.set_state(gst::State::Null).unwrap();
        println!(
            "4 real-time streams for {:.0} s, {} frames: RSS {after_1min} KiB after 1 min, {at_end} KiB at the end ({:+.2} %)",
            start.elapsed().as_secs_f64(),
            stats.get::<u64>("frames").unwrap_or(0),
            (at_end as f64 / after_1min as f64 - 1.0) * 100.0
        );
        return;
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let alone = || {
        [
            model_alone(&model, 1, cores as u32, 400),
            model_alone(&model, cores, 1, 400 / cores),
            openvino_alone(&model, cores, Precision::F32, 400 / cores),
            openvino_alone(&model, cores, Precision::Bf16, 400 / cores),
        ]
    };
    let file = format!("filesrc location={video} ! decodebin ! videoconvert ! rtpreprocess");
    // This machine's speed drifts within a run (by up to 25 % within seconds): each side of
    // every comparison runs once a round, the sides take turns, and each keeps its best
    // round, so a slow spell favours neither side. The ratios of each round are printed too.
    const ROUNDS: usize = 5;
    let mut rounds = Vec::new();
    let mut active = String::new();
    for round in 1..=ROUNDS {
        let models = alone();
        let (ours, s) = run(
            &format!("{file} ! {infer} ! fakesink name=sink sync=false"),
            None,
        );
        let (ours_f32, _) = run(
            &format!("{file} ! {infer} precision=f32 ! fakesink name=sink sync=false"),
            None,
        );
        let python = python_loops(1, &video, &model);
        let r = Round {
            models,
            ours,
            ours_f32,
            python,
        };
        active = s.get::<String>("active-device").unwrap_or_default();
        println!(
            "round {round}: model alone {} inferences/s; 1 stream, rtinfer defaults ({} requests, \
             {active}, inference {:.1} ms): {}; precision=f32: {}; Python loop: {}; ratios to the round's \
             best model alone {:.2} and {:.2}, to the Python loop {:.2}",
            models.map(|m| format!("{m:.1}")).join(" / "),
            s.get::<u32>("requests").unwrap_or(0),
            f(&s, "mean-inference-ms"),
            ours.describe(),
            ours_f32.describe(),
            python.describe(),
            r.to_model(&ours),
            r.to_model(&ours_f32),
            ours.steady_fps() / python.steady_fps(),
        );
        rounds.push(r);
    }
    let (single, _) = run(
        &format!("{file} ! {infer} requests=1 ! fakesink name=sink sync=false"),
        None,
    );
    println!("1 stream, rtinfer requests=1: {}", single.describe());
    let [one, many, ov_f32, ov_bf16] =
        std::array::from_fn(|k| rounds.iter().map(|r| r.models[k]).fold(0.0, f64::max));
    let best_model = one.max(many).max(ov_f32).max(ov_bf16);
    let best_f32 = one.max(many).max(ov_f32);
    // The defaults' own backend alone: OpenVINO bf16, or ONNX Runtime's N x 1 requests.
    let (own, own_name) = if active.starts_with("openvino") {
        (ov_bf16, format!("OpenVINO {cores} requests, bf16"))
    } else {
        (many, format!("ONNX Runtime {cores} x 1, f32"))
    };
    let ours = best(rounds.iter().map(|r| r.ours));
    let ours_f32 = best(rounds.iter().map(|r| r.ours_f32));
    let python = best(rounds.iter().map(|r| r.python));
    println!("best of {ROUNDS} rounds:");
    for (m, what) in [
        (one, format!("ONNX Runtime 1 session x {cores} threads")),
        (many, format!("ONNX Runtime {cores} sessions x 1 thread")),
        (ov_f32, format!("OpenVINO {cores} requests, f32")),
        (ov_bf16, format!("OpenVINO {cores} requests, bf16")),
    ] {
        println!("  model alone, {what}: {m:.1} inferences/s");
    }
    println!(
        "  1 stream, rtinfer defaults ({active}): {}",
        ours.describe()
    );
    println!(
        "  1 stream, rtinfer precision=f32 (ONNX Runtime): {}",
        ours_f32.describe()
    );
    println!("  1 Python loop: {}", python.describe());

    let four = |settings: &str| {
        let mut line = format!("{infer} {settings} ");
        for k in 0..4 {
            line += &format!("{file} ! i.sink_{k} i.src_{k} ! fakesink name=sink{k} sync=false ");
        }
        line
    };
    const ROUNDS4: usize = 3;
    let mut rounds4 = Vec::new();
    for round in 1..=ROUNDS4 {
        let (ours4, _) = run(&four(""), None);
        let (ours4_f32, _) = run(&four("precision=f32"), None);
        let python4 = python_loops(4, &video, &model);
        println!(
            "round {round}: 4 streams, one rtinfer, in all: {}; the same with precision=f32: {}; \
             4 Python loops at once, in all: {}; ratios {:.2} and {:.2}",
            ours4.describe(),
            ours4_f32.describe(),
            python4.describe(),
            ours4.steady_fps() / python4.steady_fps(),
            ours4_f32.steady_fps() / python4.steady_fps()
        );
        rounds4.push((ours4, ours4_f32, python4));
    }
    let ours4 = best(rounds4.iter().map(|r| r.0));
    let ours4_f32 = best(rounds4.iter().map(|r| r.1));
    let python4 = best(rounds4.iter().map(|r| r.2));
    println!("best of {ROUNDS4} rounds:");
    println!("  4 streams, one rtinfer, in all: {}", ours4.describe());
    println!(
        "  4 streams, one rtinfer precision=f32, in all: {}",
        ours4_f32.describe()
    );
    println!("  4 Python loops at once, in all: {}", python4.describe());

    let (_, s) = run(
        &live_sources(&video, &[10, 15, 25], &infer),
        Some(Duration::from_secs(20)),
    );
    let (p95, inference) = (f(&s, "p95-latency-ms"), f(&s, "mean-inference-ms"));
    println!(
        "3 real-time sources (10, 15, 25 fps): latency mean {:.1} ms, p95 {p95:.1} ms; \
         one inference {inference:.1} ms; skipped {}",
        f(&s, "mean-latency-ms"),
        s.get::<u64>("skipped").unwrap_or(0)
    );
    let rate = (best_model * 2.0 / 3.0).round() as u32;
    let max_latency = 100;
    let (over, s2) = run(
        &live_sources(
            &video,
            &[rate, rate, rate],
            &format!("{infer} max-latency={max_latency}"),
        ),
        Some(Duration::from_secs(20)),
    );
    let (p95_over, inference_over) = (f(&s2, "p95-latency-ms"), f(&s2, "mean-inference-ms"));
    println!(
        "3 real-time sources at {rate} fps each (2x the model's capacity), max-latency={max_latency}: \
         {:.0} fps arrived, latency mean {:.1} ms, p95 {p95_over:.1} ms; one inference \
         {inference_over:.1} ms; {} of {} frames skipped",
        over.fps(),
        f(&s2, "mean-latency-ms"),
        s2.get::<u64>("skipped").unwrap_or(0),
        s2.get::<u64>("frames").unwrap_or(0),
    );

    println!(
        "\nratios with start-up (model loading) included: 1 stream / Python loop {:.2}, \
         4 streams / 4 Python loops {:.2}",
        ours.fps() / python.fps(),
        ours4.fps() / python4.fps()
    );
    // Steady-state figures throughout, as the model-alone ones exclude loading too; the
    // lines above give the whole-run figures as well.
    let each = |ratio: &dyn Fn(&Round) -> f64| {
        let r: Vec<String> = rounds.iter().map(|r| format!("{:.2}", ratio(r))).collect();
        r.join(", ")
    };
    let rounds_python = each(&|r| r.ours.steady_fps() / r.python.steady_fps());
    let rounds_ours = each(&|r| r.to_model(&r.ours));
    let rounds_f32 = each(&|r| r.to_model(&r.ours_f32));
    let each4 = |side: &dyn Fn(&(Rate, Rate, Rate)) -> &Rate| {
        let r: Vec<String> = rounds4
            .iter()
            .map(|r| format!("{:.2}", side(r).steady_fps() / r.2.steady_fps()))
            .collect();
        r.join(", ")
    };
    let rounds_four = each4(&|r| &r.0);
    let rounds_four_f32 = each4(&|r| &r.1);
    let (ours, single, ours_f32, python, ours4, ours4_f32, python4) = (
        ours.steady_fps(),
        single.steady_fps(),
        ours_f32.steady_fps(),
        python.steady_fps(),
        ours4.steady_fps(),
        ours4_f32.steady_fps(),
        python4.steady_fps(),
    );
    println!("\nratios (same run, from the first frame out; best round against best round):");
    println!(
        "  1 stream / Python loop:          {:.2} (target >= 1.5; each round: {rounds_python})",
        ours / python
    );
    println!(
        "  1 stream / best model alone:     {:.2} (target >= 0.85; each round: {rounds_ours})",
        ours / best_model
    );
    println!(
        "  1 stream / its own backend alone ({own_name}): {:.2}",
        ours / own
    );
    println!("  1 stream / requests=1:           {:.2}", ours / single);
    println!(
        "  1 stream precision=f32 / Python: {:.2}",
        ours_f32 / python
    );
    println!(
        "  1 stream precision=f32 / best model alone: {:.2} (each round: {rounds_f32}); / best f32 model alone: {:.2}",
        ours_f32 / best_model,
        ours_f32 / best_f32
    );
    println!(
        "  4 streams / 4 Python loops:      {:.2} (target >= 2; each round: {rounds_four})",
        ours4 / python4,
    );
    println!(
        "  4 streams precision=f32 / 4 Python loops: {:.2} (each round: {rounds_four_f32})",
        ours4_f32 / python4,
    );
    println!(
        "  p95 latency / one inference:     {:.2} (target <= 2)",
        p95 / inference
    );
    println!(
        "  overload p95 / (max-latency + one inference): {:.2} (target < 1)",
        p95_over / (max_latency as f64 + inference_over)
    );
}

/// One round of the single-stream comparison: the model alone four ways (ONNX Runtime 1 x N
/// and N x 1, OpenVINO f32 and bf16, inferences/s), rtinfer with its defaults and with
/// `precision=f32`, and the Python loop.
struct Round {
    models: [f64; 4],
    ours: Rate,
    ours_f32: Rate,
    python: Rate,
}

impl Round {
    /// `rate` against the round's best model-alone figure.
    fn to_model(&self, rate: &Rate) -> f64 {
        rate.steady_fps() / self.models.iter().copied().fold(0.0, f64::max)
    }
}

/// The fastest (steady state) of some rates.
fn best(rates: impl Iterator<Item = Rate>) -> Rate {
    rates
        .max_by(|a, b| a.steady_fps().total_cmp(&b.steady_fps()))
        .expect("at least one round")
}
