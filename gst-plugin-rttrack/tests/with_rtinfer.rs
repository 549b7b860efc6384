//! rttrack behind a real rtinfer on vtest.avi: the standard ROI metas rtinfer adds
//! (`roi-meta=true`) carry the track ids too.

use gst::prelude::*;
use rtmeta::Detections;
use std::path::PathBuf;

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

fn model() -> String {
    let shared = std::env::var_os("RT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let p = shared.join("models/yolox_nano.onnx");
    assert!(p.exists(), "{} is missing: set RT_SHARED", p.display());
    p.display().to_string()
}

#[test]
fn roi_metas_follow_the_detections_and_their_track_ids() {
    gst::init().unwrap();
    gstrtinfer::plugin_register_static().unwrap();
    gstrttrack::plugin_register_static().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={VTEST} ! decodebin ! videoconvert ! identity eos-after=30 \
         ! rtinfer model-file={} roi-meta=true ! rttrack ! appsink name=out sync=false",
        model()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let (mut frames, mut tracked) = (0, 0);
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().unwrap();
        let dets = Detections::from_buffer(buffer).unwrap();
        let rois: Vec<_> = buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .collect();
        assert_eq!(
            rois.len(),
            dets.objects.len(),
            "frame {}",
            dets.frame_number
        );
        for (roi, o) in rois.iter().zip(&dets.objects) {
            assert_eq!(roi.roi_type(), o.label);
            assert_eq!(roi.id() as i64, o.track_id.map_or(-1, |t| t as i64));
            let (x, y, w, h) = roi.rect();
            assert!(
                (x as f32 - o.x.max(0.0)).abs() <= 1.0,
                "{:?} vs {o:?}",
                roi.rect()
            );
            assert!(
                (y as f32 - o.y.max(0.0)).abs() <= 1.0,
                "{:?} vs {o:?}",
                roi.rect()
            );
            assert!(w as f32 <= o.w + 1.0 && h as f32 <= o.h + 1.0);
            let p = roi.param(rtmeta::roi::ROI_PARAM).unwrap();
            assert_eq!(p.get::<f64>("confidence").unwrap() as f32, o.confidence);
        }
        frames += 1;
        tracked += dets.objects.iter().filter(|o| o.track_id.is_some()).count();
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(frames >= 29, "{frames} frames");
    assert!(
        tracked > 100,
        "{tracked} tracked objects in {frames} frames"
    );
}
