//! Swapping the model of a playing rtinfer (`model-file` set while PLAYING).

mod common;

use common::*;
use gst::prelude::*;
use rtmeta::{Detection, Detections};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const YOLOX: &str = "yolox_nano.onnx";
const YOLOV8: &str = "yolov8n_int8_dynamic.onnx";
/// Frames of vtest.avi each run compares. The run goes one frame further: the last frame
/// before `identity eos-after` is not always the same one (the decoder drains at EOS).
/// Loading a model in the background takes about 90 frames' time on the development
/// machine (the frames are not paced), and the test swaps twice after at least 25 frames on
/// a model: 300 leaves room for both.
const FRAMES: u64 = 300;

/// What one output frame carried.
struct Frame {
    detections: Detections,
    /// RtDetectionMeta on it.
    metas: usize,
    /// The width of the tensor rtpreprocess made for it.
    tensor_width: Option<u32>,
}

/// A playing pipeline of vtest.avi through rtpreprocess and an rtinfer named `det`.
struct Run {
    pipeline: gst::Pipeline,
    det: gst::Element,
    frames: Arc<Mutex<Vec<Frame>>>,
    seen: Arc<AtomicU64>,
}

impl Run {
    fn start(model: &str) -> Run {
        init();
        let pipeline = launch_pipeline(&format!(
            "filesrc location={VTEST} ! decodebin ! identity eos-after={} ! videoconvert \
             ! rtpreprocess ! rtinfer name=det keep-tensor=true model-file={} \
             ! appsink name=out sync=false",
            FRAMES + 1,
            common::model(model)
        ));
        let det = pipeline.by_name("det").unwrap();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(AtomicU64::new(0));
        let (f, n) = (frames.clone(), seen.clone());
        appsink(&pipeline, "out").set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let b = sample.buffer().unwrap();
                    let detections = Detections::from_buffer(b).expect("detections on every frame");
                    let metas = b
                        .iter_meta::<gst::Meta>()
                        .filter(|m| m.api().name().contains(rtmeta::DETECTION_META))
                        .count();
                    let tensor_width = rtmeta::TensorMeta::from_buffer(b).map(|t| t.width);
                    f.lock().unwrap().push(Frame {
                        detections,
                        metas,
                        tensor_width,
                    });
                    n.fetch_add(1, Ordering::SeqCst);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.set_state(gst::State::Playing).unwrap();
        Run {
            pipeline,
            det,
            frames,
            seen,
        }
    }

    fn seen(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }

    /// The next bus message that is an element message, a warning, an error or EOS.
    fn message(&self) -> Option<gst::Message> {
        let bus = self.pipeline.bus().unwrap();
        let msg = bus.timed_pop(gst::ClockTime::from_mseconds(20))?;
        match msg.view() {
            gst::MessageView::Error(e) => panic!("pipeline error: {} ({:?})", e.error(), e.debug()),
            gst::MessageView::Element(_)
            | gst::MessageView::Warning(_)
            | gst::MessageView::Eos(_) => Some(msg),
            _ => None,
        }
    }

    /// The first `FRAMES` frames.
    fn finish(self) -> Vec<Frame> {
        self.pipeline.set_state(gst::State::Null).unwrap();
        let mut frames = std::mem::take(&mut *self.frames.lock().unwrap());
        assert!(frames.len() as u64 >= FRAMES, "{} frames", frames.len());
        frames.truncate(FRAMES as usize);
        frames
    }
}

fn is_eos(msg: &gst::Message) -> bool {
    matches!(msg.view(), gst::MessageView::Eos(_))
}

/// `rtinfer-model-changed`'s frame number and model file.
fn changed(msg: &gst::Message) -> Option<(u64, String)> {
    let s = msg.structure()?;
    (s.name() == "rtinfer-model-changed").then(|| {
        (
            s.get::<u64>("frame-number").unwrap(),
            s.get::<String>("model-file").unwrap(),
        )
    })
}

fn warning_text(msg: &gst::Message) -> Option<String> {
    match msg.view() {
        gst::MessageView::Warning(w) => Some(w.error().to_string()),
        _ => None,
    }
}

/// The detections of every frame with one model from start to end.
fn reference(model: &str) -> Vec<Detections> {
    let run = Run::start(model);
    while !run.message().as_ref().is_some_and(is_eos) {}
    run.finish().into_iter().map(|f| f.detections).collect()
}

fn same(a: &[Detection], b: &[Detection]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            a.class_id == b.class_id
                && (a.confidence - b.confidence).abs() < 1e-4
                && [(a.x, b.x), (a.y, b.y), (a.w, b.w), (a.h, b.h)]
                    .iter()
                    .all(|(p, q)| (p - q).abs() < 1e-2)
        })
}

#[test]
fn swapping_the_model_while_playing_changes_models_at_a_frame_boundary_and_back() {
    let (yolox, yolov8) = (model(YOLOX), model(YOLOV8));
    let run = Run::start(YOLOX);
    // Frame numbers from which each model serves: yolox from 0, then yolov8, then yolox.
    let mut boundaries = vec![(0, yolox.clone())];
    loop {
        let seen = run.seen();
        let last = boundaries.last().unwrap().0;
        let pending = run.det.property::<String>("model-file") != boundaries.last().unwrap().1;
        if !pending && boundaries.len() < 3 && seen >= last + 25 {
            let next = if boundaries.len() == 1 {
                &yolov8
            } else {
                &yolox
            };
            run.det.set_property("model-file", next);
            // Reads back at once, while the running model goes on.
            assert_eq!(&run.det.property::<String>("model-file"), next);
        }
        let Some(msg) = run.message() else { continue };
        if is_eos(&msg) {
            break;
        }
        assert!(warning_text(&msg).is_none(), "{msg:?}");
        if let Some((frame, file)) = changed(&msg) {
            boundaries.push((frame, file));
        }
    }
    let frames = run.finish();
    let files: Vec<&str> = boundaries.iter().map(|b| b.1.as_str()).collect();
    assert_eq!(files, [&yolox, &yolov8, &yolox], "swaps: {boundaries:?}");
    let (to_v8, back) = (boundaries[1].0, boundaries[2].0);
    assert!(
        to_v8 >= 25 && back > to_v8 && back < FRAMES,
        "{boundaries:?}"
    );

    let (ref_x, ref_v8) = (reference(YOLOX), reference(YOLOV8));
    let mut v8_tensors = 0;
    for (i, f) in frames.iter().enumerate() {
        let n = i as u64;
        let d = &f.detections;
        assert_eq!(d.frame_number, n, "frames in order, none lost or doubled");
        assert_eq!(f.metas, 1, "frame {n}: one set of detections");
        assert!(!d.stale, "frame {n} was inferred");
        let expected = if (to_v8..back).contains(&n) {
            &ref_v8[i]
        } else {
            &ref_x[i]
        };
        assert!(
            same(&d.objects, &expected.objects),
            "frame {n} (swaps at {to_v8} and {back}): {:?} != {:?}",
            d.objects,
            expected.objects
        );
        // rtpreprocess upstream learned the 640x640 input (a few frames after the swap).
        if (to_v8..back).contains(&n) && f.tensor_width == Some(640) {
            v8_tensors += 1;
        }
        if n < to_v8 {
            assert_eq!(f.tensor_width, Some(416), "frame {n}");
        }
    }
    assert!(
        v8_tensors + 10 >= back - to_v8,
        "rtpreprocess made 640x640 tensors for {v8_tensors} of the {} yolov8 frames",
        back - to_v8
    );
    assert_eq!(frames.last().unwrap().tensor_width, Some(416));
}

#[test]
fn a_model_that_cannot_load_leaves_the_running_one_with_a_warning() {
    let yolox = model(YOLOX);
    let missing = "/nonexistent/model.onnx";
    let corrupt = test_data("not_a_model.onnx");
    let run = Run::start(YOLOX);
    let mut warnings = Vec::new();
    let mut tried = 0;
    loop {
        if tried < 2 && run.seen() >= 10 + 40 * tried as u64 {
            // One after the other, once the first has failed.
            if tried == warnings.len() {
                let bad = [missing, corrupt.as_str()][tried];
                run.det.set_property("model-file", bad);
                tried += 1;
            }
        }
        let Some(msg) = run.message() else { continue };
        if is_eos(&msg) {
            break;
        }
        assert!(changed(&msg).is_none(), "no swap: {msg:?}");
        if let Some(w) = warning_text(&msg) {
            // The setting is back to the running model by the time the warning is read.
            assert_eq!(run.det.property::<String>("model-file"), yolox);
            warnings.push(w);
        }
    }
    let frames = run.finish();
    assert_eq!(tried, 2, "the run ended before both models were tried");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains(missing) && warnings[0].contains("keeps running"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1].contains("not_a_model.onnx") && warnings[1].contains("keeps running"),
        "{}",
        warnings[1]
    );
    let ref_x = reference(YOLOX);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.detections.frame_number, i as u64);
        assert!(same(&f.detections.objects, &ref_x[i].objects), "frame {i}");
    }
}
