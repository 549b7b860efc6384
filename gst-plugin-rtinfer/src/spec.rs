//! What a model wants as input: the tensor spec shared by rtpreprocess and rtinfer.
//!
//! rtpreprocess asks the rtinfer downstream for it with a custom query named
//! [`QUERY_NAME`]; rtinfer answers from the model it loaded.

use gst::glib;
pub use rtalgo::spec::{Fit, TensorSpec};
use rtmeta::{ChannelOrder, DType, Layout};

/// Name of the downstream custom query that asks rtinfer for its tensor spec.
pub const QUERY_NAME: &str = "rt-tensor-spec";

/// The spec as the query's structure, and back.
pub trait SpecStructure: Sized {
    fn to_structure(&self) -> gst::Structure;
    fn from_structure(s: &gst::StructureRef) -> Option<Self>;
}

impl SpecStructure for TensorSpec {
    fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(QUERY_NAME)
            .field("width", self.width)
            .field("height", self.height)
            .field("fit", self.fit.as_str())
            .field("pad", self.pad as u32)
            .field("channel-order", self.order.as_str())
            .field("scale", self.scale as f64)
            .field("mean", gst::Array::new(self.mean.map(|v| v as f64)))
            .field("std", gst::Array::new(self.std.map(|v| v as f64)))
            .field("layout", self.layout.as_str())
            .field("dtype", self.dtype.as_str())
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Option<Self> {
        let triple = |name: &str| -> Option<[f32; 3]> {
            let a = s.get::<gst::Array>(name).ok()?;
            let v: Vec<f32> = a
                .iter()
                .filter_map(|v| v.get::<f64>().ok())
                .map(|v| v as f32)
                .collect();
            v.try_into().ok()
        };
        Some(TensorSpec {
            width: s.get("width").ok()?,
            height: s.get("height").ok()?,
            fit: Fit::parse(s.get("fit").ok()?)?,
            pad: s.get::<u32>("pad").ok()?.min(255) as u8,
            order: ChannelOrder::parse(s.get("channel-order").ok()?)?,
            scale: s.get::<f64>("scale").ok()? as f32,
            mean: triple("mean")?,
            std: triple("std")?,
            layout: Layout::parse(s.get("layout").ok()?)?,
            dtype: DType::parse(s.get("dtype").ok()?)?,
        })
    }
}

// Property enums: each has an `Auto` value meaning "as the model downstream wants".

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstRtLetterbox")]
pub enum LetterboxProp {
    #[default]
    #[enum_value(name = "Auto: as the model downstream wants", nick = "auto")]
    Auto,
    #[enum_value(name = "Keep aspect, image at the top-left (YOLOX)", nick = "top-left")]
    TopLeft,
    #[enum_value(name = "Keep aspect, image centred (Ultralytics)", nick = "center")]
    Center,
    #[enum_value(name = "Stretch to the tensor size", nick = "stretch")]
    Stretch,
}

impl LetterboxProp {
    pub fn get(self) -> Option<Fit> {
        match self {
            Self::Auto => None,
            Self::TopLeft => Some(Fit::TopLeft),
            Self::Center => Some(Fit::Center),
            Self::Stretch => Some(Fit::Stretch),
        }
    }
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstRtChannelOrder")]
pub enum ChannelOrderProp {
    #[default]
    #[enum_value(name = "Auto: as the model downstream wants", nick = "auto")]
    Auto,
    #[enum_value(name = "RGB", nick = "rgb")]
    Rgb,
    #[enum_value(name = "BGR", nick = "bgr")]
    Bgr,
}

impl ChannelOrderProp {
    pub fn get(self) -> Option<ChannelOrder> {
        match self {
            Self::Auto => None,
            Self::Rgb => Some(ChannelOrder::Rgb),
            Self::Bgr => Some(ChannelOrder::Bgr),
        }
    }
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstRtTensorLayout")]
pub enum LayoutProp {
    #[default]
    #[enum_value(name = "Auto: as the model downstream wants", nick = "auto")]
    Auto,
    #[enum_value(name = "NCHW (planar)", nick = "nchw")]
    Nchw,
    #[enum_value(name = "NHWC (interleaved)", nick = "nhwc")]
    Nhwc,
}

impl LayoutProp {
    pub fn get(self) -> Option<Layout> {
        match self {
            Self::Auto => None,
            Self::Nchw => Some(Layout::Nchw),
            Self::Nhwc => Some(Layout::Nhwc),
        }
    }
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstRtTensorDType")]
pub enum DTypeProp {
    #[default]
    #[enum_value(name = "Auto: as the model downstream wants", nick = "auto")]
    Auto,
    #[enum_value(name = "32-bit float", nick = "f32")]
    F32,
    #[enum_value(name = "16-bit float", nick = "f16")]
    F16,
    #[enum_value(name = "8-bit unsigned (0..255, no normalisation)", nick = "u8")]
    U8,
}

impl DTypeProp {
    pub fn get(self) -> Option<DType> {
        match self {
            Self::Auto => None,
            Self::F32 => Some(DType::F32),
            Self::F16 => Some(DType::F16),
            Self::U8 => Some(DType::U8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_round_trip() {
        gst::init().unwrap();
        let mut spec = TensorSpec::ultralytics(640, 480);
        spec.mean = [0.485, 0.456, 0.406];
        spec.dtype = DType::F16;
        assert_eq!(TensorSpec::from_structure(&spec.to_structure()), Some(spec));
    }
}
