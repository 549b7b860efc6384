//! Loading ONNX Runtime: a missing, foreign or too old library is a clear error, and a good
//! one still loads afterwards. Its own test binary, since a process loads ONNX Runtime once.
//!
//! `RT_OLD_ORT` names an ONNX Runtime older than 1.20 (scripts/test.sh fetches 1.19.2).

mod common;
use common::*;

fn load_error(library: &str) -> String {
    let line = format!(
        "videotestsrc num-buffers=1 ! rtinfer model-file={} onnxruntime-library={library} ! fakesink",
        model("yolox_nano.onnx")
    );
    match run_launch(&line).0 {
        End::Error { message, .. } => message,
        End::Eos => panic!("{library} loaded"),
    }
}

#[test]
fn missing_foreign_old_then_good_library() {
    let e = load_error("/nonexistent/libonnxruntime.so");
    assert!(
        e.contains("/nonexistent/libonnxruntime.so: no such file"),
        "{e}"
    );
    assert!(e.contains("pip install onnxruntime"), "{e}");

    let e = load_error("/usr/lib/x86_64-linux-gnu/libz.so.1");
    assert!(e.contains("does not export `OrtGetApiBase`"), "{e}");

    let old = std::env::var("RT_OLD_ORT").expect(
        "RT_OLD_ORT must name an ONNX Runtime older than 1.20 (scripts/test.sh fetches one)",
    );
    let e = load_error(&old);
    assert!(
        e.contains("expected version >= '1.20.x', but got '1.19"),
        "{e}"
    );

    // Nothing above poisons the process: the default search still finds a good library.
    let line = format!(
        "filesrc location={DARKNET}/dog.jpg ! jpegdec ! videoconvert ! rtinfer backend=onnxruntime model-file={} ! appsink name=out",
        model("yolox_nano.onnx")
    );
    let (end, dets) = run_launch(&line);
    assert!(matches!(end, End::Eos), "{end:?}");
    assert!(!dets[0].objects.is_empty());
}
