//! Bad input ends in a clear error and a clean state change, never a panic or a hang.

mod common;
use common::*;
use gst::prelude::*;

fn expect_error(line: &str, needle: &str) {
    let (end, _) = run_launch(line);
    match end {
        End::Error { message, debug } => assert!(
            message.contains(needle) || debug.contains(needle),
            "{line}: error does not mention {needle:?}: {message} / {debug}"
        ),
        End::Eos => panic!("{line}: expected an error, got EOS"),
    }
}

fn photo_into(infer: &str) -> String {
    format!(
        "filesrc location={DARKNET}/dog.jpg ! jpegdec ! videoconvert ! rtpreprocess ! {infer} ! fakesink"
    )
}

#[test]
fn missing_model_file() {
    expect_error(
        &photo_into("rtinfer model-file=/nonexistent/model.onnx"),
        "/nonexistent/model.onnx",
    );
    expect_error(&photo_into("rtinfer"), "model-file");
}

#[test]
fn file_that_is_not_onnx() {
    let bad = test_data("not_a_model.onnx");
    expect_error(
        &photo_into(&format!("rtinfer model-file={bad}")),
        "is not a model ONNX Runtime can load",
    );
}

#[test]
fn outputs_that_fit_no_layout() {
    let bad = test_data("bad_output.onnx");
    expect_error(
        &photo_into(&format!("rtinfer model-file={bad}")),
        "fits no YOLO layout",
    );
    // Forcing a format the output does not have is refused too.
    let yolox = model("yolox_nano.onnx");
    expect_error(
        &photo_into(&format!(
            "rtinfer model-file={yolox} model-format=ultralytics"
        )),
        "does not have the ultralytics layout",
    );
}

#[test]
fn dynamic_input_shape() {
    let bad = test_data("dynamic_input.onnx");
    expect_error(
        &photo_into(&format!("rtinfer model-file={bad}")),
        "needs a fixed height and width",
    );
}

#[test]
fn bad_label_and_class_settings() {
    let yolox = model("yolox_nano.onnx");
    expect_error(
        &photo_into(&format!(
            "rtinfer model-file={yolox} label-file=/nonexistent/labels.txt"
        )),
        "/nonexistent/labels.txt",
    );
    expect_error(
        &photo_into(&format!(
            "rtinfer model-file={yolox} classes=person,unicorn"
        )),
        "unicorn",
    );
    expect_error(
        &photo_into(&format!("rtinfer model-file={yolox} classes=80")),
        "out of range",
    );
}

#[test]
fn bad_normalisation_settings() {
    let yolox = model("yolox_nano.onnx");
    let line = format!(
        "filesrc location={DARKNET}/dog.jpg ! jpegdec ! videoconvert ! rtpreprocess mean=1,2 ! rtinfer model-file={yolox} ! fakesink"
    );
    expect_error(&line, "mean \"1,2\"");
    let line = format!(
        "filesrc location={DARKNET}/dog.jpg ! jpegdec ! videoconvert ! rtpreprocess std=0 ! rtinfer model-file={yolox} ! fakesink"
    );
    expect_error(&line, "divide by zero");
}

/// Pushes one buffer with `caps` from an appsrc into `chain`; returns how the run ended.
fn push_with_caps(caps: &str, chain: &str) -> End {
    init();
    let line = format!("appsrc name=src caps={caps} ! {chain} ! fakesink");
    let pipeline = launch_pipeline(&line);
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let _ = src.push_buffer(gst::Buffer::with_size(300).unwrap());
    let _ = src.end_of_stream();
    run(&pipeline).0
}

#[test]
fn unsupported_caps() {
    let yolox = model("yolox_nano.onnx");
    for chain in [
        "rtpreprocess".to_string(),
        format!("rtinfer model-file={yolox}"),
    ] {
        let end = push_with_caps(
            "video/x-raw,format=GRAY8,width=10,height=10,framerate=1/1",
            &chain,
        );
        match end {
            End::Error { debug, .. } => {
                assert!(debug.contains("not-negotiated"), "{chain}: {debug}")
            }
            End::Eos => panic!("{chain}: GRAY8 was accepted"),
        }
    }
}

#[test]
fn zero_and_huge_frame_sizes() {
    let yolox = model("yolox_nano.onnx");
    let chain = format!("rtpreprocess ! rtinfer model-file={yolox}");
    for size in ["width=0,height=0", "width=20000,height=100"] {
        let end = push_with_caps(
            &format!("video/x-raw,format=RGB,{size},framerate=1/1"),
            &chain,
        );
        assert!(matches!(end, End::Error { .. }), "{size}: {end:?}");
    }
}

#[test]
fn eos_before_any_frame() {
    let yolox = model("yolox_nano.onnx");
    let line = format!(
        "appsrc caps=video/x-raw,format=RGB,width=64,height=48,framerate=1/1 ! rtpreprocess ! rtinfer model-file={yolox} ! rtjsonenc ! fakesink"
    );
    init();
    let pipeline = launch_pipeline(&line);
    let src = pipeline
        .by_name("appsrc0")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    src.end_of_stream().unwrap();
    let (end, messages) = run(&pipeline);
    assert!(matches!(end, End::Eos), "{end:?}");
    // The stats still arrive, saying no frame was seen.
    let stats = messages
        .iter()
        .find(|s| s.name() == "rtinfer-stats")
        .expect("stats at EOS");
    assert_eq!(stats.get::<u64>("frames").unwrap(), 0);
}

#[test]
fn a_buffer_smaller_than_its_caps_is_named_as_such() {
    // Both tensor paths (rtpreprocess, and rtinfer's own) check the size before mapping.
    let yolox = model("yolox_nano.onnx");
    for chain in [
        "rtpreprocess ! fakesink",
        &format!("rtinfer model-file={yolox} ! fakesink"),
    ] {
        init();
        let pipeline = launch_pipeline(&format!(
            "appsrc name=src format=time caps=video/x-raw,format=NV12,width=640,height=480,framerate=1/1 ! {chain}"
        ));
        let src = pipeline
            .by_name("src")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        let _ = src.push_buffer(gst::Buffer::from_mut_slice(vec![0u8; 100]));
        let _ = src.end_of_stream();
        let error = rttest::first_error(&pipeline)
            .unwrap_or_else(|| panic!("{chain}: a 100-byte NV12 640x480 frame was accepted"));
        // A frame that does not fit its caps is a stream format error, not a failure.
        let message = error.message().to_string();
        assert!(
            error.matches(gst::StreamError::Format)
                && message.contains("100 bytes is too small for its caps"),
            "{chain}: {error:?} {message}"
        );
    }
}

#[test]
fn a_label_file_shorter_than_the_model_warns_with_both_counts() {
    init();
    let labels = std::env::temp_dir().join(format!("rt-three-labels-{}.txt", std::process::id()));
    std::fs::write(&labels, "\u{feff}person\r\nbicycle\r\ncar\r\n").unwrap();
    let pipeline = launch_pipeline(&format!(
        "videotestsrc num-buffers=1 ! rtinfer label-file={} model-file={} ! fakesink",
        labels.display(),
        model("yolox_nano.onnx")
    ));
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut warnings = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Eos(_) | gst::MessageView::Error(_) => break,
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let _ = std::fs::remove_file(&labels);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("name 3 classes but the model has 80")),
        "{warnings:?}"
    );
}

/// Warnings and the end of a pipeline run.
fn warnings_of(line: &str) -> (Vec<String>, bool) {
    init();
    let pipeline = launch_pipeline(line);
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let (mut warnings, mut eos) = (Vec::new(), false);
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Eos(_) => {
                eos = true;
                break;
            }
            gst::MessageView::Error(_) => break,
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (warnings, eos)
}

#[test]
fn a_forced_format_the_model_cannot_have_is_an_error() {
    // YOLOX's [1, 3549, 85] has the YOLOv5 shape, but its raw grid rows (log-scale sizes,
    // many negative) cannot be YOLOv5's decoded boxes: an error on the first frame, not 795
    // frames with no detection.
    let yolox = model("yolox_nano.onnx");
    expect_error(
        &photo_into(&format!("rtinfer model-file={yolox} model-format=yolov5")),
        "model-format=yolov5 does not fit",
    );
}

#[test]
fn a_forced_format_that_finds_nothing_warns_once() {
    let yolox = model("yolox_nano.onnx");
    let line = |format: &str| {
        format!(
            "videotestsrc num-buffers=40 pattern=black ! video/x-raw,width=320,height=240 \
             ! videoconvert ! rtinfer model-file={yolox} model-format={format} ! fakesink"
        )
    };
    let (warnings, eos) = warnings_of(&line("yolox"));
    assert!(eos);
    let doubts: Vec<_> = warnings
        .iter()
        .filter(|w| w.contains("first 30 inferred frames gave no detection"))
        .collect();
    assert_eq!(doubts.len(), 1, "{warnings:?}");
    assert!(doubts[0].contains("model-format=auto"), "{}", doubts[0]);
    // Found by itself, the format is not doubted.
    let (warnings, eos) = warnings_of(&line("auto"));
    assert!(eos && warnings.is_empty(), "{warnings:?}");
}
