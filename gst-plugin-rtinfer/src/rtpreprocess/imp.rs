//! rtpreprocess: attaches the model input tensor of each frame as `RtTensorMeta`; the frame
//! itself passes through unchanged.

use crate::convert;
use crate::device::{self, DeviceRequest};
use crate::spec::{
    ChannelOrderProp, DTypeProp, LayoutProp, LetterboxProp, QUERY_NAME, SpecStructure, TensorSpec,
};
use crate::tensorize::Tensorizer;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtpreprocess",
        gst::DebugColorFlags::empty(),
        Some("Frame to model input tensor"),
    )
});

/// Properties; unset values (0, -1, auto, empty) are taken from the rtinfer downstream.
#[derive(Clone, Debug, Default)]
struct Settings {
    width: u32,
    height: u32,
    letterbox: LetterboxProp,
    pad_value: i32,
    channel_order: ChannelOrderProp,
    scale: f64,
    mean: String,
    std: String,
    layout: LayoutProp,
    dtype: DTypeProp,
    /// The `device` property as set; parsed when caps arrive.
    device: String,
}

impl Settings {
    fn new() -> Self {
        Settings {
            pad_value: -1,
            device: "auto".into(),
            ..Default::default()
        }
    }

    /// The spec to use: the one downstream asked for (or YOLOX defaults), with every
    /// property that is set taking precedence.
    fn resolve(&self, base: TensorSpec) -> Result<TensorSpec, BadTriple> {
        let mut s = base;
        if self.width > 0 {
            s.width = self.width;
        }
        if self.height > 0 {
            s.height = self.height;
        }
        if let Some(f) = self.letterbox.get() {
            s.fit = f;
        }
        if self.pad_value >= 0 {
            s.pad = self.pad_value as u8;
        }
        if let Some(o) = self.channel_order.get() {
            s.order = o;
        }
        if self.scale > 0.0 {
            s.scale = self.scale as f32;
        }
        if let Some(m) = parse_triple("mean", &self.mean)? {
            s.mean = m;
        }
        if let Some(m) = parse_triple("std", &self.std)? {
            s.std = m;
        }
        if let Some(l) = self.layout.get() {
            s.layout = l;
        }
        if let Some(d) = self.dtype.get() {
            s.dtype = d;
        }
        Ok(s)
    }
}

/// A `mean` or `std` that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{name} \"{text}\" is not one number or three comma-separated numbers")]
struct BadTriple {
    name: &'static str,
    text: String,
}

/// "a,b,c" or a single value for all three channels; empty means unset.
fn parse_triple(name: &'static str, text: &str) -> Result<Option<[f32; 3]>, BadTriple> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let values: Result<Vec<f32>, _> = text.split(',').map(|v| v.trim().parse::<f32>()).collect();
    match values.as_deref() {
        Ok([v]) => Ok(Some([*v; 3])),
        Ok([a, b, c]) => Ok(Some([*a, *b, *c])),
        _ => Err(BadTriple {
            name,
            text: text.to_string(),
        }),
    }
}

#[derive(Default)]
pub struct RtPreprocess {
    settings: Mutex<Settings>,
    /// Made for the negotiated caps.
    state: Mutex<Option<Tensorizer>>,
    /// The negotiated caps.
    info: Mutex<Option<gst_video::VideoInfo>>,
    /// Downstream asked to reconfigure (an rtinfer swapped its model): ask it again for
    /// the tensor to make before the next frame.
    requery: AtomicBool,
    /// `active-device`: where the tensor is made.
    active_device: Mutex<String>,
}

#[glib::object_subclass]
impl ObjectSubclass for RtPreprocess {
    const NAME: &'static str = "GstRtPreprocess";
    type Type = super::RtPreprocess;
    type ParentType = gst_base::BaseTransform;

    fn new() -> Self {
        RtPreprocess {
            settings: Mutex::new(Settings::new()),
            state: Mutex::new(None),
            info: Mutex::new(None),
            requery: AtomicBool::new(false),
            active_device: Mutex::new(String::new()),
        }
    }
}

impl RtPreprocess {
    /// Asks downstream (an rtinfer) for the tensor spec of its model.
    fn query_downstream(&self) -> Option<TensorSpec> {
        let mut q = gst::query::Custom::new(gst::Structure::new_empty(QUERY_NAME));
        if !self.obj().src_pad().peer_query(&mut q) {
            return None;
        }
        q.structure().and_then(TensorSpec::from_structure)
    }

    /// The tensor to make: what downstream's model wants, with this element's settings.
    fn spec(&self) -> Result<TensorSpec, BadTriple> {
        let settings = self.settings.lock().unwrap().clone();
        let base = match self.query_downstream() {
            Some(spec) => {
                gst::info!(
                    CAT,
                    imp = self,
                    "downstream model wants {}",
                    spec.describe()
                );
                spec
            }
            None => {
                gst::warning!(
                    CAT,
                    imp = self,
                    "no rtinfer downstream answered; using YOLOX 416x416 defaults where \
                     properties are unset"
                );
                TensorSpec::yolox(416, 416)
            }
        };
        settings.resolve(base)
    }

    fn configure(&self, info: &gst_video::VideoInfo) -> Result<Tensorizer, gst::ErrorMessage> {
        let context = format!(
            "Cannot preprocess {}x{} {:?} frames",
            info.width(),
            info.height(),
            info.format()
        );
        let settings_error = |e: &dyn std::fmt::Display| {
            gst::error_msg!(gst::LibraryError::Settings, ("{context}: {e}"))
        };
        let spec = self.spec().map_err(|e| settings_error(&e))?;
        let settings = self.settings.lock().unwrap().clone();
        let request: DeviceRequest = settings
            .device
            .parse()
            .map_err(|e: rtalgo::device::DeviceError| settings_error(&e))?;
        let selected = device::select(request);
        let (tensorizer, kernel_failed) = Tensorizer::new(info, &spec, selected.cuda.as_ref(), 2)
            .map_err(|e| e.to_gst(&context))?;
        let why: Vec<String> = selected
            .why_cpu
            .clone()
            .into_iter()
            .chain(kernel_failed.map(|e| e.to_string()))
            .collect();
        let active = if tensorizer.on_gpu() {
            selected.name()
        } else {
            "cpu".into()
        };
        device::report(self.obj().upcast_ref(), request, &active, &why);
        *self.active_device.lock().unwrap() = active;
        gst::info!(
            CAT,
            imp = self,
            "{}x{} {:?} -> tensor {}",
            info.width(),
            info.height(),
            info.format(),
            spec.describe()
        );
        Ok(tensorizer)
    }
}

impl ObjectImpl for RtPreprocess {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("width")
                    .nick("Tensor width")
                    .blurb("Width of the model input in pixels (0 = as the rtinfer downstream wants)")
                    .maximum(convert::MAX_SIDE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("height")
                    .nick("Tensor height")
                    .blurb("Height of the model input in pixels (0 = as the rtinfer downstream wants)")
                    .maximum(convert::MAX_SIDE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("letterbox", LetterboxProp::Auto)
                    .nick("Letterbox")
                    .blurb("How the frame is fitted into the tensor: keep the aspect ratio with the \
                            image at the top-left (YOLOX) or centred (Ultralytics), or stretch")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("pad-value")
                    .nick("Pad value")
                    .blurb("Pixel value (0..255, before normalisation) of the letterbox padding \
                            (-1 = as downstream wants; YOLO models use 114)")
                    .minimum(-1)
                    .maximum(255)
                    .default_value(-1)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("channel-order", ChannelOrderProp::Auto)
                    .nick("Channel order")
                    .blurb("Colour order of the tensor channels (YOLOX: bgr, Ultralytics: rgb)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("scale")
                    .nick("Scale")
                    .blurb("Pixel values are multiplied by this before mean and std apply \
                            (0 = as downstream wants; YOLOX: 1, Ultralytics: 1/255)")
                    .minimum(0.0)
                    .maximum(1000.0)
                    .default_value(0.0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("mean")
                    .nick("Mean")
                    .blurb("Per tensor channel mean subtracted after scaling: one value or three \
                            comma-separated, e.g. \"0.485,0.456,0.406\" (empty = as downstream wants)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("std")
                    .nick("Standard deviation")
                    .blurb("Per tensor channel divisor applied after the mean: one value or three \
                            comma-separated, e.g. \"0.229,0.224,0.225\" (empty = as downstream wants)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("layout", LayoutProp::Auto)
                    .nick("Layout")
                    .blurb("Tensor memory layout")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("dtype", DTypeProp::Auto)
                    .nick("Element type")
                    .blurb("Tensor element type")
                    .mutable_ready()
                    .build(),
                device::property(),
                glib::ParamSpecString::builder("active-device")
                    .nick("Active device")
                    .blurb("Where the tensor is made, once caps are set: cpu or cuda:N")
                    .read_only()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "width" => s.width = value.get().unwrap(),
            "height" => s.height = value.get().unwrap(),
            "letterbox" => s.letterbox = value.get().unwrap(),
            "pad-value" => s.pad_value = value.get().unwrap(),
            "channel-order" => s.channel_order = value.get().unwrap(),
            "scale" => s.scale = value.get().unwrap(),
            "mean" => s.mean = value.get::<Option<String>>().unwrap().unwrap_or_default(),
            "std" => s.std = value.get::<Option<String>>().unwrap().unwrap_or_default(),
            "layout" => s.layout = value.get().unwrap(),
            "dtype" => s.dtype = value.get().unwrap(),
            "device" => s.device = device::property_value(value),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "width" => s.width.to_value(),
            "height" => s.height.to_value(),
            "letterbox" => s.letterbox.to_value(),
            "pad-value" => s.pad_value.to_value(),
            "channel-order" => s.channel_order.to_value(),
            "scale" => s.scale.to_value(),
            "mean" => s.mean.to_value(),
            "std" => s.std.to_value(),
            "layout" => s.layout.to_value(),
            "dtype" => s.dtype.to_value(),
            "device" => s.device.to_value(),
            "active-device" => self.active_device.lock().unwrap().to_value(),
            _ => unreachable!(),
        }
    }
}

impl GstObjectImpl for RtPreprocess {}

impl ElementImpl for RtPreprocess {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Model input preprocessing",
                "Filter/Video",
                "Makes the model input tensor of each frame (letterbox resize, colour order, \
                 normalisation, layout, type) and attaches it as RtTensorMeta; the frame passes \
                 through unchanged. Unset properties follow the rtinfer downstream.",
                "rt analytics developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            use gst::{PadDirection::*, PadPresence::*};
            vec![
                convert::pad_template("src", Src, Always),
                convert::pad_template("sink", Sink, Always),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for RtPreprocess {
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

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let old = self.state.lock().unwrap().take();
        drop(old);
        *self.info.lock().unwrap() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse caps {incaps}"))?;
        self.requery.store(false, Ordering::Relaxed);
        *self.info.lock().unwrap() = Some(info.clone());
        self.reconfigure(&info)
            .map_err(|()| gst::loggable_error!(CAT, "no tensor for caps {incaps} (error posted)"))
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if event.type_() == gst::EventType::Reconfigure {
            self.requery.store(true, Ordering::Relaxed);
        }
        self.parent_src_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.requery.swap(false, Ordering::Relaxed) {
            self.requery_downstream()?;
        }
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("No caps before the first frame")
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let meta = state.meta(buf);
        drop(guard);
        let meta = meta.map_err(|e| {
            self.post_error_message(e.to_gst("Preprocessing failed"));
            gst::FlowError::Error
        })?;
        meta.attach(buf).map_err(|_| gst::FlowError::Error)?;
        Ok(gst::FlowSuccess::Ok)
    }
}

impl RtPreprocess {
    /// A tensorizer for `info` and what downstream wants now; posts the error if none can
    /// be made.
    fn reconfigure(&self, info: &gst_video::VideoInfo) -> Result<(), ()> {
        match self.configure(info) {
            Ok(state) => {
                let old = self.state.lock().unwrap().replace(state);
                drop(old);
                Ok(())
            }
            Err(msg) => {
                self.post_error_message(msg);
                Err(())
            }
        }
    }

    /// After a reconfigure event: a new tensorizer when downstream's model now wants
    /// another tensor (an rtinfer swapped its model).
    fn requery_downstream(&self) -> Result<(), gst::FlowError> {
        let Some(info) = self.info.lock().unwrap().clone() else {
            return Ok(()); // not negotiated yet: set_caps asks
        };
        let current = self
            .state
            .lock()
            .unwrap()
            .as_ref()
            .map(|t| t.spec().clone());
        match self.spec() {
            Ok(spec) if Some(&spec) == current.as_ref() => Ok(()),
            _ => self
                .reconfigure(&info)
                .map_err(|_| gst::FlowError::NotNegotiated),
        }
    }
}
