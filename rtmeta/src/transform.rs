//! What the metas become when an element makes a new frame out of an old one.
//!
//! `RtDetectionMeta` and `RtRegionMeta` carry the tags of `GstVideoRegionOfInterestMeta`
//! (`video`, `size`, `orientation`), and follow the same rules:
//!
//! * a copy of the buffer (`gst_buffer_copy`, `make_writable`, `videoconvert`) copies them;
//! * a scale (`videoscale`, `videoconvertscale`) scales the detections' boxes and their
//!   `width`/`height`; zones and lines are fractions of the frame and stay as they are;
//! * anything else (`videoflip`, `videocrop`, and the generic filters and codecs that do not
//!   know these tags) drops them, so that no element draws or alerts on boxes that point to
//!   the wrong part of the picture.
//!
//! The Rust binding of `gst_meta_register_custom` does not pass the transform's data (the
//! video infos of a scale), so the function is registered through the C API here.

use crate::{DETECTION_META, Detections, REGION_META};
use gst::glib;
use gst::glib::translate::{FromGlibPtrNone, IntoGlib};

/// The tags of `GstVideoRegionOfInterestMeta`: the meta describes positions in the picture.
const TAGS: [&str; 3] = ["video", "size", "orientation"];

/// Registers `name` with [`TAGS`] and the transform below. Main-thread rules as for
/// `gst::meta::CustomMeta::register`.
pub(crate) fn register(name: &'static str) {
    let name = std::ffi::CString::new(name).expect("meta names have no NUL");
    let tags: Vec<std::ffi::CString> = TAGS
        .iter()
        .map(|t| std::ffi::CString::new(*t).expect("tags have no NUL"))
        .collect();
    let mut tag_ptrs: Vec<*const std::ffi::c_char> = tags.iter().map(|t| t.as_ptr()).collect();
    tag_ptrs.push(std::ptr::null());
    // SAFETY: the name and the NULL-terminated tag array outlive the call (GStreamer copies
    // them into quarks); the function pointer is 'static and takes no user data.
    unsafe {
        gst::ffi::gst_meta_register_custom(
            name.as_ptr(),
            tag_ptrs.as_mut_ptr(),
            Some(transform),
            std::ptr::null_mut(),
            None,
        );
    }
}

/// A scale from `from` to `to` pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub from: (u32, u32),
    pub to: (u32, u32),
}

impl Detections {
    /// These detections on the frame scaled as `scale` says. Boxes refer to this meta's own
    /// `width`/`height`, which need not be the frame's (a meta from before this tagging, or
    /// from an app): both are scaled by the same factors, so they stay consistent.
    pub fn scale(&mut self, scale: Scale) {
        let axis = |size: &mut u32, from: u32, to: u32| -> f64 {
            if from == 0 || *size == 0 || from == to {
                return 1.0;
            }
            let old = *size;
            *size = if old == from {
                to
            } else {
                ((old as f64) * to as f64 / from as f64).round().max(1.0) as u32
            };
            *size as f64 / old as f64
        };
        let fx = axis(&mut self.width, scale.from.0, scale.to.0);
        let fy = axis(&mut self.height, scale.from.1, scale.to.1);
        for o in &mut self.objects {
            o.x = (o.x as f64 * fx) as f32;
            o.w = (o.w as f64 * fx) as f32;
            o.y = (o.y as f64 * fy) as f32;
            o.h = (o.h as f64 * fy) as f32;
        }
    }
}

/// The custom meta transform (`GstCustomMetaTransformFunction`).
unsafe extern "C" fn transform(
    dest: *mut gst::ffi::GstBuffer,
    meta: *mut gst::ffi::GstCustomMeta,
    _src: *mut gst::ffi::GstBuffer,
    kind: glib::ffi::GQuark,
    data: glib::ffi::gpointer,
    _user_data: glib::ffi::gpointer,
) -> glib::ffi::gboolean {
    // SAFETY: GStreamer calls this with a valid meta, a writable destination buffer and,
    // for a scale, a `GstVideoMetaTransform` whose infos are valid for the call.
    unsafe {
        // Looked up once: a quark lookup takes GLib's global lock, and copies run per frame.
        static QUARKS: std::sync::OnceLock<(glib::ffi::GQuark, glib::ffi::GQuark)> =
            std::sync::OnceLock::new();
        let &(copy, scale_quark) = QUARKS.get_or_init(|| {
            (
                glib::Quark::from_str("gst-copy").into_glib(),
                gst_video::ffi::gst_video_meta_transform_scale_get_quark(),
            )
        });
        let scale = if kind == copy {
            None
        } else if kind == scale_quark && !data.is_null() {
            let t = &*(data as *const gst_video::ffi::GstVideoMetaTransform);
            let from = gst_video::VideoInfo::from_glib_none(t.in_info);
            let to = gst_video::VideoInfo::from_glib_none(t.out_info);
            Some(Scale {
                from: (from.width(), from.height()),
                to: (to.width(), to.height()),
            })
        } else {
            return glib::ffi::GFALSE;
        };
        let source = gst::StructureRef::from_glib_borrow((*meta).structure);
        let dest = gst::BufferRef::from_mut_ptr(dest);
        copy_into(dest, source, scale).into_glib()
    }
}

/// Adds a copy of the meta whose structure is `source` to `dest`, scaled if asked.
fn copy_into(dest: &mut gst::BufferRef, source: &gst::StructureRef, scale: Option<Scale>) -> bool {
    let name = source.name().as_str();
    let detections = match (name, scale) {
        (DETECTION_META, Some(scale)) if scale.from != scale.to => {
            match Detections::from_structure(source) {
                Some(mut d) => {
                    d.scale(scale);
                    Some(d)
                }
                None => return false,
            }
        }
        _ => None,
    };
    let Ok(mut meta) = gst::meta::CustomMeta::add(dest, name) else {
        return false;
    };
    let target = meta.mut_structure();
    match detections {
        Some(d) => d.write_structure(target),
        None => {
            for (field, value) in source.iter() {
                target.set_value(field, value.clone());
            }
        }
    }
    true
}

/// Registers both metas that describe positions in the picture.
pub(crate) fn register_positional() {
    for name in [DETECTION_META, REGION_META] {
        if !gst::meta::CustomMeta::is_registered(name) {
            register(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Detection, Region, RegionKind, Regions};
    use gst::prelude::*;

    fn detections() -> Detections {
        Detections {
            source_id: 3,
            frame_number: 7,
            width: 320,
            height: 240,
            stale: false,
            objects: vec![Detection {
                class_id: 0,
                label: "person".into(),
                confidence: 0.9,
                x: 10.0,
                y: 20.0,
                w: 60.0,
                h: 100.0,
                track_id: Some(4),
                producer: Some("i".into()),
            }],
        }
    }

    fn regions() -> Regions {
        Regions(vec![Region {
            rule: "door".into(),
            kind: RegionKind::Zone,
            points: vec![(0.1, 0.1), (0.5, 0.1), (0.5, 0.5)],
            active: true,
        }])
    }

    /// How many metas named `name` the buffer carries.
    fn count(buffer: &gst::BufferRef, name: &str) -> usize {
        buffer
            .iter_meta::<gst::Meta>()
            .filter(|m| m.api().name() == format!("{name}-api"))
            .count()
    }

    /// One 320x240 RGB frame with both metas through `elements`; the metas that come out.
    fn through(elements: &str) -> (Option<Detections>, Option<Regions>) {
        gst::init().unwrap();
        crate::register();
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src format=time caps=video/x-raw,format=RGB,width=320,height=240,framerate=0/1 \
             ! {elements} ! appsink name=sink sync=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = pipeline
            .by_name("src")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut buffer = gst::Buffer::with_size(320 * 240 * 3).unwrap();
        {
            let b = buffer.get_mut().unwrap();
            b.set_pts(gst::ClockTime::ZERO);
            detections().attach(b).unwrap();
            regions().attach(b).unwrap();
        }
        src.push_buffer(buffer).unwrap();
        src.end_of_stream().unwrap();
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(10))
            .expect("a frame comes out");
        pipeline.set_state(gst::State::Null).unwrap();
        let out = sample.buffer().unwrap();
        assert!(count(out, crate::DETECTION_META) <= 1, "no duplicate metas");
        assert!(count(out, crate::REGION_META) <= 1, "no duplicate metas");
        (Detections::from_buffer(out), Regions::from_buffer(out))
    }

    #[test]
    fn copies_keep_the_metas() {
        gst::init().unwrap();
        crate::register();
        let mut buffer = gst::Buffer::with_size(16).unwrap();
        detections().attach(buffer.get_mut().unwrap()).unwrap();
        regions().attach(buffer.get_mut().unwrap()).unwrap();
        let copy = buffer.copy();
        assert_eq!(Detections::from_buffer(&copy), Some(detections()));
        assert_eq!(Regions::from_buffer(&copy), Some(regions()));
        assert_eq!(count(&copy, crate::DETECTION_META), 1);
    }

    #[test]
    fn a_format_conversion_keeps_them_as_they_are() {
        let (d, r) = through("videoconvert ! video/x-raw,format=I420");
        assert_eq!(d, Some(detections()));
        assert_eq!(r, Some(regions()));
    }

    #[test]
    fn a_scale_scales_the_boxes_and_keeps_the_regions() {
        let (d, r) = through("videoscale ! video/x-raw,width=160,height=60");
        let d = d.expect("detections survive a scale");
        assert_eq!((d.width, d.height), (160, 60));
        let o = &d.objects[0];
        assert_eq!((o.x, o.y, o.w, o.h), (5.0, 5.0, 30.0, 25.0));
        assert_eq!((o.track_id, o.label.as_str()), (Some(4), "person"));
        assert_eq!(r, Some(regions()), "regions are fractions of the frame");
    }

    #[test]
    fn flips_and_crops_drop_them_rather_than_point_elsewhere() {
        for elements in ["videoflip video-direction=horiz", "videocrop left=100"] {
            assert_eq!(through(elements), (None, None), "{elements}");
        }
    }

    #[test]
    fn a_meta_whose_size_is_not_the_frames_scales_by_the_same_factors() {
        let mut d = detections();
        d.width = 640;
        d.height = 480;
        d.scale(Scale {
            from: (320, 240),
            to: (160, 120),
        });
        assert_eq!((d.width, d.height), (320, 240));
        assert_eq!(d.objects[0].x, 5.0);
        // Nothing to scale from: left as it is.
        let mut z = detections();
        z.scale(Scale {
            from: (0, 0),
            to: (10, 10),
        });
        assert_eq!(z, detections());
    }
}
