//! The `device` property on a host without a usable GPU (CI): everything runs on the CPU with
//! the golden results, and a message says why CUDA was not used: a warning when CUDA was named,
//! info for `auto`, nothing for `cpu`. rtinfer runs the faster CPU backend
//! ([`cpu_default_device`]) unless CUDA was named. On a GPU host these fallbacks do not happen; the GPU
//! tests in cuda.rs cover it.

mod common;
use common::*;
use gst::prelude::*;
use gstrtinfer::cuda;

struct Outcome {
    end: End,
    warnings: Vec<String>,
    infos: Vec<String>,
    detections: Vec<rtmeta::Detections>,
    active: Vec<(String, String)>,
}

/// Runs the dog photo through `rtpreprocess {pre} ! rtinfer {infer}`.
fn run_dog(pre: &str, infer: &str) -> Outcome {
    init();
    let line = format!(
        "filesrc location={DARKNET}/dog.jpg ! jpegdec ! videoconvert ! rtpreprocess name=pre {pre} \
         ! rtinfer name=infer model-file={} {infer} ! appsink name=out",
        model("yolox_nano.onnx")
    );
    let pipeline = launch_pipeline(&line);
    let sink = appsink(&pipeline, "out");
    let bus = pipeline.bus().unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let (mut warnings, mut infos, mut detections) = (vec![], vec![], vec![]);
    let end = loop {
        if let Some(s) = sink.try_pull_sample(gst::ClockTime::ZERO) {
            detections.push(rtmeta::Detections::from_buffer(s.buffer().unwrap()).unwrap());
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(20)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Info(i) => {
                // gst-launch prints only the debug text of INFO messages: it must say it too.
                let debug = i.debug().map(|d| d.to_string()).unwrap_or_default();
                assert!(
                    debug.contains(&i.error().to_string()),
                    "INFO debug: {debug}"
                );
                infos.push(i.error().to_string())
            }
            gst::MessageView::Eos(_) => break End::Eos,
            gst::MessageView::Error(e) => {
                break End::Error {
                    message: e.error().to_string(),
                    debug: String::new(),
                };
            }
            _ => {}
        }
    };
    while let Some(s) = sink.try_pull_sample(gst::ClockTime::ZERO) {
        detections.push(rtmeta::Detections::from_buffer(s.buffer().unwrap()).unwrap());
    }
    let active = ["pre", "infer"]
        .iter()
        .map(|n| {
            let e = pipeline.by_name(n).unwrap();
            (
                e.property::<String>("device"),
                e.property::<Option<String>>("active-device")
                    .unwrap_or_default(),
            )
        })
        .collect();
    pipeline.set_state(gst::State::Null).unwrap();
    Outcome {
        end,
        warnings,
        infos,
        detections,
        active,
    }
}

fn gpu_host() -> bool {
    cuda::Device::open(0).is_ok()
}

fn assert_golden(o: &Outcome) {
    assert!(matches!(o.end, End::Eos), "{:?}", o.end);
    assert_eq!(o.detections.len(), 1);
    let problems = compare(&golden("yolox_nano", "dog"), &o.detections[0].objects);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn cpu_runs_quietly_on_the_cpu() {
    let o = run_dog("device=cpu", "device=cpu");
    assert_golden(&o);
    assert!(
        o.warnings.is_empty() && o.infos.is_empty(),
        "{:?} {:?}",
        o.warnings,
        o.infos
    );
    assert_eq!(
        o.active,
        [
            ("cpu".into(), "cpu".into()),
            ("cpu".into(), cpu_default_device().into())
        ]
    );
}

#[test]
fn cuda_by_name_without_a_gpu_warns_and_runs_on_the_cpu() {
    if gpu_host() {
        return;
    }
    let o = run_dog("device=cuda:0", "device=cuda:0");
    assert_golden(&o);
    assert!(o.infos.is_empty(), "{:?}", o.infos);
    assert_eq!(o.warnings.len(), 2, "{:?}", o.warnings);
    for w in &o.warnings {
        assert!(
            w.starts_with("device=cuda:0: running on cpu: no usable CUDA device ("),
            "{w}"
        );
    }
    // rtinfer also says what ONNX Runtime lacks (the setup installs the CPU package).
    assert!(
        o.warnings
            .iter()
            .any(|w| w.contains("CPU-only build") && w.contains("onnxruntime-gpu"))
    );
    assert_eq!(o.active[1], ("cuda:0".into(), "cpu".into()));
}

#[test]
fn auto_without_a_gpu_only_informs() {
    if gpu_host() {
        return;
    }
    let o = run_dog("", "");
    assert_golden(&o);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    assert_eq!(o.infos.len(), 2, "{:?}", o.infos);
    // One each from rtpreprocess (the CPU) and rtinfer (the faster CPU backend), in either
    // order.
    let mut places: Vec<&str> = o
        .infos
        .iter()
        .map(|i| {
            i.strip_prefix("device=auto: running on ")
                .and_then(|rest| rest.split_once(": no usable CUDA device"))
                .map_or(i.as_str(), |(place, _)| place)
        })
        .collect();
    places.sort();
    let mut expected = vec!["cpu", cpu_default_device()];
    expected.sort();
    assert_eq!(places, expected, "{:?}", o.infos);
    assert_eq!(
        o.active,
        [
            ("auto".into(), "cpu".into()),
            ("auto".into(), cpu_default_device().into())
        ]
    );
}

#[test]
fn an_openvino_device_that_is_not_there_warns_and_runs_on_the_cpu() {
    // This host has no Intel GPU; OpenVINO says what it sees and the CPU runs the model.
    let o = run_dog("device=openvino:GPU", "device=openvino:GPU");
    assert_golden(&o);
    assert!(o.infos.is_empty(), "{:?}", o.infos);
    assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
    let w = &o.warnings[0];
    assert!(
        w.starts_with("device=openvino:GPU: running on openvino:CPU")
            && w.contains("OpenVINO device GPU is not available")
            && w.contains("sees: CPU"),
        "{w}"
    );
    // rtpreprocess prepares frames on the CPU for OpenVINO, without a message.
    assert_eq!(o.active[0], ("openvino:GPU".into(), "cpu".into()));
    assert!(o.active[1].1.starts_with("openvino:CPU"), "{:?}", o.active);
}

#[test]
fn an_openvino_device_needs_the_openvino_backend() {
    let o = run_dog("", "device=openvino:NPU backend=onnxruntime");
    match o.end {
        End::Error { message, .. } => assert!(
            message.contains("device=openvino:NPU: an OpenVINO device needs backend=openvino"),
            "{message}"
        ),
        End::Eos => panic!("expected an error"),
    }
}

#[test]
fn an_unknown_device_is_a_clear_error() {
    for (pre, infer) in [
        ("device=tpu", "device=cpu"),
        ("device=cpu", "device=cuda:x"),
    ] {
        let o = run_dog(pre, infer);
        match o.end {
            End::Error { message, .. } => {
                assert!(message.contains("expected auto, cpu, cuda:N"), "{message}")
            }
            End::Eos => panic!("{pre} {infer}: expected an error"),
        }
    }
}

#[test]
fn a_lower_precision_on_onnx_runtime_warns_and_runs_f32() {
    let o = run_dog(
        "device=cpu",
        "device=cpu backend=onnxruntime precision=bf16",
    );
    assert_golden(&o);
    assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
    assert!(
        o.warnings[0].starts_with("precision=bf16: ONNX Runtime runs the model in its own")
            && o.warnings[0].contains("backend=openvino or auto"),
        "{}",
        o.warnings[0]
    );
    assert_eq!(o.active[1], ("cpu".into(), "cpu".into()));
}
