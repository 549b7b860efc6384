//! rtoverlay: draws each frame's detections on it, in place, in its own pixel format.
//!
//! Glue over `rtalgo::draw`: the font is read when the element starts (not on the streaming
//! thread), sizes follow the frame height unless set, and boxes recorded for another frame
//! size (a `videoscale` after rtinfer) are scaled to this one.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use rtalgo::draw::canvas::{Canvas, Color, Format, Plane};
use rtalgo::draw::overlay::{Object, Overlay, Shape, Style};
use rtalgo::draw::text::Text;
use rtalgo::geometry::Rect;
use rtmeta::{Detections, RegionKind, Regions};
use std::sync::{Arc, LazyLock, Mutex};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtoverlay",
        gst::DebugColorFlags::empty(),
        Some("Draws detections"),
    )
});

const FORMATS: [gst_video::VideoFormat; 8] = [
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
];

fn canvas_format(f: gst_video::VideoFormat) -> Option<Format> {
    use gst_video::VideoFormat as V;
    Some(match f {
        V::Rgb => Format::Rgb,
        V::Bgr => Format::Bgr,
        V::Rgba => Format::Rgba,
        V::Bgra => Format::Bgra,
        V::Rgbx => Format::Rgbx,
        V::Bgrx => Format::Bgrx,
        V::I420 => Format::I420,
        V::Nv12 => Format::Nv12,
        _ => return None,
    })
}

/// Property values. Replaced whole on every change, so a frame takes them with one `Arc`
/// clone.
#[derive(Clone, Debug)]
struct Settings {
    font_file: String,
    font_size: u32,
    line_width: u32,
    show_labels: bool,
    show_confidence: bool,
    show_track_ids: bool,
    box_color: u32,
    text_color: u32,
    blur_classes: Vec<String>,
    blur_block: u32,
    min_confidence: f32,
    show_regions: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            font_file: rtalgo::draw::DEFAULT_FONT.to_owned(),
            font_size: 0,
            line_width: 0,
            show_labels: true,
            show_confidence: true,
            show_track_ids: true,
            box_color: 0,
            text_color: 0,
            blur_classes: Vec::new(),
            blur_block: 0,
            min_confidence: 0.0,
            show_regions: true,
        }
    }
}

impl Settings {
    /// Whether objects of this class are pixelated (by label, or class id as a number).
    fn blurs(&self, label: &str, class_id: u32) -> bool {
        self.blur_classes
            .iter()
            .any(|c| c == label || c.parse::<u32>() == Ok(class_id))
    }

    /// The drawing style for frames `height` pixels high.
    fn style(&self, height: u32) -> Style {
        let color = |v: u32| (v >> 24 != 0).then(|| Color::from_u32(v));
        let auto = |set: u32, value: u32| if set > 0 { set } else { value };
        Style {
            line_width: auto(self.line_width, (height / 360).max(2)) as i32,
            show_label: self.show_labels,
            show_confidence: self.show_confidence,
            show_track_id: self.show_track_ids,
            box_color: color(self.box_color),
            text_color: color(self.text_color),
            blur_block: auto(self.blur_block, (height / 30).max(8)),
        }
    }

    fn font_px(&self, height: u32) -> f32 {
        if self.font_size > 0 {
            self.font_size as f32
        } else {
            (height as f32 / 40.0).clamp(10.0, 64.0).round()
        }
    }
}

struct State {
    info: Option<gst_video::VideoInfo>,
    overlay: Overlay,
    /// The settings the overlay was made for.
    applied: Option<Arc<Settings>>,
}

pub struct RtOverlay {
    settings: Mutex<Arc<Settings>>,
    state: Mutex<Option<State>>,
}

impl Default for RtOverlay {
    fn default() -> Self {
        RtOverlay {
            settings: Mutex::new(Arc::new(Settings::default())),
            state: Mutex::new(None),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtOverlay {
    const NAME: &'static str = "GstRtOverlay";
    type Type = super::RtOverlay;
    type ParentType = gst_base::BaseTransform;
}

impl State {
    /// Brings style and font size up to date with the settings and the frame height.
    fn refresh(&mut self, settings: &Arc<Settings>, height: u32) {
        if self
            .applied
            .as_ref()
            .is_some_and(|a| Arc::ptr_eq(a, settings))
        {
            return;
        }
        self.overlay.style = settings.style(height);
        let px = settings.font_px(height);
        if let Some(text) = self.overlay.text()
            && text.px() != px
        {
            let resized = text.resized(px);
            self.overlay = Overlay::new(self.overlay.style.clone(), Some(resized));
        }
        self.applied = Some(settings.clone());
    }
}

impl ObjectImpl for RtOverlay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("font-file")
                    .nick("Font file")
                    .blurb(
                        "TrueType/OpenType font for the labels (Debian: fonts-dejavu-core); \
                         empty: boxes only, no text",
                    )
                    .default_value(Some(d.font_file.as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("font-size")
                    .nick("Font size")
                    .blurb("Label text height in pixels (0: a 40th of the frame height)")
                    .maximum(200)
                    .default_value(d.font_size)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("line-width")
                    .nick("Line width")
                    .blurb(
                        "Box outline width in pixels (0: a 360th of the frame height, at least 2)",
                    )
                    .maximum(50)
                    .default_value(d.line_width)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("show-labels")
                    .nick("Show labels")
                    .blurb("Write each object's class label")
                    .default_value(d.show_labels)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("show-confidence")
                    .nick("Show confidence")
                    .blurb("Write each object's confidence, in percent")
                    .default_value(d.show_confidence)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("show-track-ids")
                    .nick("Show track ids")
                    .blurb("Write the track id (#N) of tracked objects")
                    .default_value(d.show_track_ids)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("show-regions")
                    .nick("Show regions")
                    .blurb(
                        "Draw the zones and lines that rtalert attaches (RtRegionMeta) with their \
                         rule names, highlighted while their rule holds",
                    )
                    .default_value(d.show_regions)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("min-confidence")
                    .nick("Minimum confidence")
                    .blurb(
                        "Draw only objects at or above this confidence (tracked ones always), \
                         for when rtinfer passes low-confidence detections on for rttrack",
                    )
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.min_confidence)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("box-color")
                    .nick("Box colour")
                    .blurb(
                        "One colour for every box, 0xAARRGGBB; with alpha 0 (the default) a \
                         tracked object keeps one colour of a 20-colour palette for its whole \
                         track, and untracked ones take their class's",
                    )
                    .default_value(d.box_color)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("text-color")
                    .nick("Text colour")
                    .blurb(
                        "Label text colour, 0xAARRGGBB; with alpha 0 (the default) black or \
                         white, whichever reads better on the box colour",
                    )
                    .default_value(d.text_color)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("blur-classes")
                    .nick("Blur classes")
                    .blurb(
                        "Comma-separated class labels or ids whose boxes are pixelated instead \
                         of outlined, for privacy (e.g. \"person\" or \"0,2\")",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("blur-block")
                    .nick("Blur block")
                    .blurb("Pixelation block size in pixels (0: a 30th of the frame height)")
                    .maximum(512)
                    .default_value(d.blur_block)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut guard = self.settings.lock().unwrap();
        let mut s = (**guard).clone();
        match pspec.name() {
            "font-file" => s.font_file = value.get::<Option<String>>().unwrap().unwrap_or_default(),
            "font-size" => s.font_size = value.get().unwrap(),
            "line-width" => s.line_width = value.get().unwrap(),
            "show-labels" => s.show_labels = value.get().unwrap(),
            "show-confidence" => s.show_confidence = value.get().unwrap(),
            "show-track-ids" => s.show_track_ids = value.get().unwrap(),
            "box-color" => s.box_color = value.get().unwrap(),
            "text-color" => s.text_color = value.get().unwrap(),
            "blur-classes" => {
                s.blur_classes = value
                    .get::<Option<String>>()
                    .unwrap()
                    .unwrap_or_default()
                    .split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect()
            }
            "blur-block" => s.blur_block = value.get().unwrap(),
            "min-confidence" => s.min_confidence = value.get().unwrap(),
            "show-regions" => s.show_regions = value.get().unwrap(),
            _ => unreachable!(),
        }
        *guard = Arc::new(s);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap().clone();
        match pspec.name() {
            "font-file" => s.font_file.to_value(),
            "font-size" => s.font_size.to_value(),
            "line-width" => s.line_width.to_value(),
            "show-labels" => s.show_labels.to_value(),
            "show-confidence" => s.show_confidence.to_value(),
            "show-track-ids" => s.show_track_ids.to_value(),
            "box-color" => s.box_color.to_value(),
            "text-color" => s.text_color.to_value(),
            "blur-classes" => s.blur_classes.join(",").to_value(),
            "blur-block" => s.blur_block.to_value(),
            "min-confidence" => s.min_confidence.to_value(),
            "show-regions" => s.show_regions.to_value(),
            _ => unreachable!(),
        }
    }
}

impl GstObjectImpl for RtOverlay {}

impl ElementImpl for RtOverlay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Detection overlay",
                "Filter/Editor/Video",
                "Draws the objects of RtDetectionMeta on the frames in place, with no colour \
                 conversion: box outlines, label, confidence and track id with a real font, a \
                 stable colour per track, and pixelation of chosen classes for privacy",
                "rt analytics developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS)
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for RtOverlay {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn propose_allocation(
        &self,
        decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        self.parent_propose_allocation(decide_query, query)?;
        rtmeta::refuse_crop_meta(query);
        Ok(())
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let text = if settings.font_file.is_empty() {
            None
        } else {
            let data = std::fs::read(&settings.font_file).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    (
                        "Could not read the label font {}: {e}. Install fonts-dejavu-core, set \
                         font-file to another TrueType font, or set it empty for boxes only",
                        settings.font_file
                    )
                )
            })?;
            let text = Text::new(&data, settings.font_px(480)).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    (
                        "{} is not a font this element can read: {e}",
                        settings.font_file
                    )
                )
            })?;
            Some(text)
        };
        *self.state.lock().unwrap() = Some(State {
            info: None,
            overlay: Overlay::new(Style::default(), text),
            applied: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "not video caps: {incaps}"))?;
        let mut state = self.state.lock().unwrap();
        let state = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps before start"))?;
        if state.info.as_ref().map(|i| i.height()) != Some(info.height()) {
            state.applied = None; // sizes follow the frame height
        }
        state.info = Some(info);
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings.lock().unwrap().clone();
        let dets = Detections::from_buffer(buf).filter(|d| !d.objects.is_empty());
        let regions = settings
            .show_regions
            .then(|| Regions::from_buffer(buf))
            .flatten()
            .filter(|r| !r.0.is_empty());
        if dets.is_none() && regions.is_none() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let Some(info) = state.info.clone() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let (fw, fh) = (info.width(), info.height());
        state.refresh(&settings, fh);
        // Boxes refer to the frame rtinfer saw; scale them if this one differs.
        let objects: Vec<Object> = dets.as_ref().map_or_else(Vec::new, |dets| {
            let sx = if dets.width > 0 {
                fw as f32 / dets.width as f32
            } else {
                1.0
            };
            let sy = if dets.height > 0 {
                fh as f32 / dets.height as f32
            } else {
                1.0
            };
            dets.objects
                .iter()
                .filter(|o| o.track_id.is_some() || o.confidence >= settings.min_confidence)
                .map(|o| Object {
                    rect: Rect::new(o.x * sx, o.y * sy, o.w * sx, o.h * sy),
                    label: &o.label,
                    class_id: o.class_id,
                    confidence: o.confidence,
                    track_id: o.track_id,
                    blur: settings.blurs(&o.label, o.class_id),
                })
                .collect()
        });
        // Region points are fractions of the frame.
        let points: Vec<Vec<(f32, f32)>> = regions.as_ref().map_or_else(Vec::new, |r| {
            r.0.iter()
                .map(|region| {
                    region
                        .points
                        .iter()
                        .map(|&(x, y)| ((x * fw as f64) as f32, (y * fh as f64) as f32))
                        .collect()
                })
                .collect()
        });
        let shapes: Vec<Shape> = regions.as_ref().map_or_else(Vec::new, |r| {
            r.0.iter()
                .zip(&points)
                .map(|(region, points)| Shape {
                    points,
                    closed: region.kind == RegionKind::Zone,
                    label: &region.rule,
                    active: region.active,
                })
                .collect()
        });
        let format = canvas_format(info.format()).ok_or(gst::FlowError::NotNegotiated)?;
        let drawn = match gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info) {
            Ok(mut frame) => {
                let mut strides = [0usize; 4];
                for (s, v) in strides.iter_mut().zip(frame.plane_stride()) {
                    *s = *v as usize;
                }
                let planes = frame
                    .planes_data_mut()
                    .into_iter()
                    .zip(strides)
                    .map(|(data, stride)| Plane { data, stride });
                match Canvas::new(format, fw, fh, planes) {
                    Some(mut canvas) => {
                        state.overlay.draw_shapes(&mut canvas, &shapes);
                        state.overlay.draw(&mut canvas, &objects);
                        Ok(())
                    }
                    None => Err(format!(
                        "The frame's planes are smaller than its caps say ({fw}x{fh} {format:?})"
                    )),
                }
            }
            Err(e) => Err(format!("Could not map the frame for writing: {e}")),
        };
        drop(guard);
        drawn.map(|_| gst::FlowSuccess::Ok).map_err(|message| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{message}"));
            gst::FlowError::Error
        })
    }
}
