//! Detections as standard `GstVideoRegionOfInterestMeta` as well, for elements and apps that
//! know only that meta (as DL Streamer does): one meta per object, `roi-type` = label,
//! `id` = track id (-1 before tracking), and a parameter structure `rt-detection` with
//! `class-id`, `confidence` and `track-id`. The parameter marks them as ours, so that replacing
//! them leaves ROI metas of other elements alone.

use crate::Detections;
use std::ops::ControlFlow;

/// Name of the parameter structure on the ROI metas made from detections.
pub const ROI_PARAM: &str = "rt-detection";

/// Whether `buffer` carries ROI metas made from detections.
pub fn has_roi(buffer: &gst::BufferRef) -> bool {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .any(|m| m.param(ROI_PARAM).is_some())
}

/// Removes the ROI metas made from detections; returns how many there were.
pub fn remove_roi(buffer: &mut gst::BufferRef) -> usize {
    let mut removed = 0;
    buffer.foreach_meta_mut(|mut meta| {
        let ours = meta
            .downcast_ref::<gst_video::VideoRegionOfInterestMeta>()
            .is_some_and(|m| m.param(ROI_PARAM).is_some());
        removed += ours as usize;
        ControlFlow::Continue(if ours {
            gst::buffer::BufferMetaForeachAction::Remove
        } else {
            gst::buffer::BufferMetaForeachAction::Keep
        })
    });
    removed
}

/// Replaces the ROI metas made from detections with one per object of `dets`, boxes clipped
/// to the frame.
pub fn attach_roi(dets: &Detections, buffer: &mut gst::BufferRef) {
    remove_roi(buffer);
    let (fw, fh) = (dets.width as f32, dets.height as f32);
    for o in &dets.objects {
        let x0 = o.x.clamp(0.0, fw);
        let y0 = o.y.clamp(0.0, fh);
        let x1 = (o.x + o.w).clamp(0.0, fw);
        let y1 = (o.y + o.h).clamp(0.0, fh);
        let rect = (
            x0.round() as u32,
            y0.round() as u32,
            (x1 - x0).round() as u32,
            (y1 - y0).round() as u32,
        );
        let mut meta = gst_video::VideoRegionOfInterestMeta::add(buffer, &o.label, rect);
        let track_id = o.track_id.map_or(-1, |t| t as i64);
        meta.set_id(i32::try_from(track_id).unwrap_or(-1));
        meta.add_param(
            gst::Structure::builder(ROI_PARAM)
                .field("class-id", o.class_id as i32)
                .field("confidence", o.confidence as f64)
                .field("track-id", track_id)
                .build(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Detection;

    #[test]
    fn one_roi_per_object_replacing_only_our_own() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::new();
        let b = buffer.get_mut().unwrap();
        // An ROI of another element (a face detector, say) stays.
        gst_video::VideoRegionOfInterestMeta::add(b, "face", (1, 2, 3, 4));
        let mut dets = Detections {
            width: 100,
            height: 50,
            objects: vec![Detection {
                class_id: 2,
                label: "car".into(),
                confidence: 0.75,
                x: -5.0,
                y: 10.4,
                w: 50.0,
                h: 60.0,
                track_id: None,
                producer: None,
            }],
            ..Detections::default()
        };
        attach_roi(&dets, b);
        dets.objects[0].track_id = Some(7);
        attach_roi(&dets, b);
        let rois: Vec<_> = b
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| {
                (
                    m.roi_type().to_owned(),
                    m.rect(),
                    m.id(),
                    m.param(ROI_PARAM).map(|p| p.to_owned()),
                )
            })
            .collect();
        assert_eq!(rois.len(), 2, "{rois:?}");
        assert_eq!((rois[0].0.as_str(), rois[0].1), ("face", (1, 2, 3, 4)));
        let (label, rect, id, param) = &rois[1];
        assert_eq!(
            (label.as_str(), *rect, *id),
            ("car", (0, 10, 45, 40), 7),
            "clipped to the frame"
        );
        let param = param.as_ref().unwrap();
        assert_eq!(param.get::<i32>("class-id").unwrap(), 2);
        assert_eq!(param.get::<f64>("confidence").unwrap(), 0.75);
        assert_eq!(param.get::<i64>("track-id").unwrap(), 7);
        assert!(has_roi(b));
        assert_eq!(remove_roi(b), 1);
        assert!(!has_roi(b));
    }
}
