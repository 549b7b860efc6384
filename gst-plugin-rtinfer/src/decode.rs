//! YOLO output decoding lives in [`rtalgo::decode`]; this adds the `model-format` property
//! type.

use gst::glib;
pub use rtalgo::decode::*;

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstRtModelFormat")]
pub enum FormatProp {
    #[default]
    #[enum_value(name = "Auto: from the output shape", nick = "auto")]
    Auto,
    #[enum_value(
        name = "YOLOX [1,N,5+C], raw grid or decoded, BGR 0..255",
        nick = "yolox"
    )]
    Yolox,
    #[enum_value(name = "YOLOv5 [1,N,5+C] with objectness, RGB /255", nick = "yolov5")]
    Yolov5,
    #[enum_value(
        name = "Ultralytics YOLOv8/YOLO11 [1,4+C,N], RGB /255",
        nick = "ultralytics"
    )]
    Ultralytics,
}

impl FormatProp {
    pub fn get(self) -> Option<Format> {
        match self {
            Self::Auto => None,
            Self::Yolox => Some(Format::Yolox),
            Self::Yolov5 => Some(Format::Yolov5),
            Self::Ultralytics => Some(Format::Ultralytics),
        }
    }
}
