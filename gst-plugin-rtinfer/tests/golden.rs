//! The golden photos through both preprocessing paths, both model layouts, and every backend
//! and precision, checked against ../shared/data/golden_*.json with the shared tolerance.

mod common;
use common::*;
use gst::prelude::*;

/// The backends and precisions that must all give the golden results.
const BACKENDS: [&str; 6] = [
    // The default: OpenVINO in bf16 on CPUs that compute bf16, else ONNX Runtime.
    "backend=auto",
    "backend=onnxruntime",
    "backend=openvino precision=f32",
    "backend=openvino precision=bf16",
    "backend=openvino precision=f16",
    "backend=openvino precision=auto",
];

fn check(model_file: &str, model: &str, image: &str, with_preprocess: bool) {
    // OpenVINO's f16 on this CPU takes minutes per run of the int8-quantized Ultralytics
    // model; f16 is checked on yolox_nano.
    let slow = |b: &str| model_file.contains("int8") && b.contains("f16");
    for backend in BACKENDS.into_iter().filter(|b| !slow(b)) {
        check_on(backend, model_file, model, image, with_preprocess);
    }
}

fn check_on(backend: &str, model_file: &str, model: &str, image: &str, with_preprocess: bool) {
    let pre = if with_preprocess {
        "rtpreprocess ! "
    } else {
        ""
    };
    let line = format!(
        "filesrc location={DARKNET}/{image}.jpg ! jpegdec ! videoconvert ! {pre}\
         rtinfer {backend} model-file={} ! appsink name=out",
        common::model(model_file)
    );
    let (end, dets) = run_launch(&line);
    assert!(matches!(end, End::Eos), "{line}: {end:?}");
    assert_eq!(dets.len(), 1);
    let problems = compare(&golden(model, image), &dets[0].objects);
    assert!(
        problems.is_empty(),
        "{model} {image} ({backend}, rtpreprocess: {with_preprocess}): {problems:#?}\ngot {:#?}",
        dets[0].objects
    );
}

#[test]
fn yolox_nano_golden_photos() {
    for image in ["dog", "person", "horses"] {
        check("yolox_nano.onnx", "yolox_nano", image, true);
        check("yolox_nano.onnx", "yolox_nano", image, false);
    }
}

#[test]
fn ultralytics_golden_photos() {
    for image in ["dog", "person", "horses"] {
        check(
            "yolov8n_int8_dynamic.onnx",
            "yolov8n_int8_dynamic",
            image,
            true,
        );
        check(
            "yolov8n_int8_dynamic.onnx",
            "yolov8n_int8_dynamic",
            image,
            false,
        );
    }
}

#[test]
fn every_input_format_gives_the_same_objects() {
    // The converter reads packed RGB variants and 4:2:0 YUV directly.
    for format in [
        "RGB", "BGRx", "xRGB", "RGBA", "NV12", "I420", "YV12", "NV21",
    ] {
        let line = format!(
            "filesrc location={DARKNET}/dog.jpg ! jpegdec ! videoconvert ! \
             video/x-raw,format={format} ! rtpreprocess ! rtinfer model-file={} ! appsink name=out",
            common::model("yolox_nano.onnx")
        );
        let (end, dets) = run_launch(&line);
        assert!(matches!(end, End::Eos), "{format}: {end:?}");
        let problems = compare(&golden("yolox_nano", "dog"), &dets[0].objects);
        assert!(problems.is_empty(), "{format}: {problems:#?}");
    }
}

#[test]
fn a_second_rtinfer_adds_its_detections_to_the_first_ones() {
    // Cascaded detectors (two models here): each keeps its own classes, every object says
    // which element found it, and each set is its model's golden result.
    let line = format!(
        "filesrc location={DARKNET}/dog.jpg ! jpegdec ! videoconvert ! \
         rtinfer name=animals model-file={} classes=dog ! \
         rtinfer name=vehicles model-file={} classes=bicycle,car,truck ! appsink name=out",
        common::model("yolox_nano.onnx"),
        common::model("yolov8n_int8_dynamic.onnx")
    );
    let (end, dets) = run_launch(&line);
    assert!(matches!(end, End::Eos), "{end:?}");
    let objects = &dets[0].objects;
    let of = |producer: &str| -> Vec<rtmeta::Detection> {
        objects
            .iter()
            .filter(|o| o.producer.as_deref() == Some(producer))
            .cloned()
            .collect()
    };
    let (animals, vehicles) = (of("animals"), of("vehicles"));
    assert_eq!(
        animals.len() + vehicles.len(),
        objects.len(),
        "{objects:#?}"
    );
    let only = |model: &str, classes: &[u32]| -> Vec<Expected> {
        golden(model, "dog")
            .into_iter()
            .filter(|e| classes.contains(&e.class_id))
            .collect()
    };
    let (dog, vehicle_classes) = ([16], [1, 2, 7]);
    assert!(!animals.is_empty() && !vehicles.is_empty(), "{objects:#?}");
    let problems = compare(&only("yolox_nano", &dog), &animals);
    assert!(problems.is_empty(), "{problems:#?}");
    let problems = compare(&only("yolov8n_int8_dynamic", &vehicle_classes), &vehicles);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_wrong_convention_fails_the_comparison() {
    // YOLOX fed 0..1 instead of 0..255 finds nothing: the comparison must notice.
    let line = format!(
        "filesrc location={DARKNET}/dog.jpg ! jpegdec ! videoconvert ! \
         rtpreprocess scale=0.00392156862745098 ! rtinfer model-file={} ! appsink name=out",
        common::model("yolox_nano.onnx")
    );
    let (end, dets) = run_launch(&line);
    assert!(matches!(end, End::Eos), "{end:?}");
    assert!(!compare(&golden("yolox_nano", "dog"), &dets[0].objects).is_empty());
}

#[test]
fn active_device_says_which_backend_and_precision_run() {
    init();
    let ort_library = gstrtinfer::backend::ortlib::candidates(None)
        .into_iter()
        .find(|p| p.is_file())
        .expect("scripts/setup.sh installs ONNX Runtime");
    for (backend, expected) in [
        // The defaults run the faster on this CPU: OpenVINO's bf16 where the CPU computes bf16.
        ("", cpu_default_device()),
        ("backend=onnxruntime", "cpu"),
        ("backend=openvino precision=f32", "openvino:CPU (f32)"),
        ("backend=openvino precision=bf16", "openvino:CPU (bf16)"),
        // Only OpenVINO runs bf16, so backend=auto (the default) chooses it.
        ("precision=bf16", "openvino:CPU (bf16)"),
        ("precision=f32", "cpu"),
        // OpenVINO cannot be loaded (here: not from that path, as one OpenVINO is loaded
        // already): ONNX Runtime stands in.
        ("openvino-library=/nonexistent/libopenvino_c.so", "cpu"),
        // onnxruntime-library set asks for ONNX Runtime.
        (
            format!("onnxruntime-library={}", ort_library.display()).as_str(),
            "cpu",
        ),
    ] {
        let pipeline = launch_pipeline(&format!(
            "videotestsrc num-buffers=1 ! rtinfer name=i device=cpu {backend} model-file={} ! fakesink",
            common::model("yolox_nano.onnx")
        ));
        let (end, _) = run(&pipeline);
        assert!(matches!(end, End::Eos), "{backend}: {end:?}");
        let active: String = pipeline.by_name("i").unwrap().property("active-device");
        assert_eq!(active, expected, "{backend}");
    }
}

#[test]
fn a_tensor_made_before_the_video_was_scaled_is_not_used() {
    // rtpreprocess's tensor meta survives videoscale, but its box mapping is for the frame
    // before scaling: rtinfer must prepare the scaled frame itself, and find the same.
    let line = |pre: &str| {
        format!(
            "filesrc location={DARKNET}/dog.jpg ! jpegdec ! videoconvert ! {pre} videoscale ! \
             video/x-raw,width=384,height=288 ! rtinfer model-file={} ! appsink name=out",
            common::model("yolox_nano.onnx")
        )
    };
    let (end, scaled_here) = run_launch(&line(""));
    assert!(matches!(end, End::Eos), "{end:?}");
    let (end, scaled_after) = run_launch(&line("rtpreprocess !"));
    assert!(matches!(end, End::Eos), "{end:?}");
    let boxes = |d: &[rtmeta::Detections]| {
        d[0].objects
            .iter()
            .map(|o| {
                (
                    o.class_id,
                    o.x.round(),
                    o.y.round(),
                    o.w.round(),
                    o.h.round(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(!boxes(&scaled_here).is_empty());
    assert_eq!(boxes(&scaled_here), boxes(&scaled_after));
    assert!(
        boxes(&scaled_here)
            .iter()
            .all(|b| b.1 + b.3 <= 384.0 && b.2 + b.4 <= 288.0)
    );
}
