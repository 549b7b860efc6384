//! What a model wants as input: size, fit, padding, channel order, normalisation, layout and
//! element type of its tensor.

use crate::tensor::{ChannelOrder, DType, Layout};

/// How the frame is fitted into the tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Keep the aspect ratio, image at the top-left corner, sizes truncated (YOLOX).
    TopLeft,
    /// Keep the aspect ratio, image centred, sizes rounded (Ultralytics).
    Center,
    /// Scale each axis to the tensor size, ignoring the aspect ratio.
    Stretch,
}

impl Fit {
    pub fn as_str(self) -> &'static str {
        match self {
            Fit::TopLeft => "top-left",
            Fit::Center => "center",
            Fit::Stretch => "stretch",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "top-left" => Fit::TopLeft,
            "center" => Fit::Center,
            "stretch" => Fit::Stretch,
            _ => return None,
        })
    }
}

/// A fully resolved preprocessing spec. Values are normalised as
/// `(pixel * scale - mean[c]) / std[c]`, with `c` the tensor channel.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
    pub pad: u8,
    pub order: ChannelOrder,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub layout: Layout,
    pub dtype: DType,
}

impl TensorSpec {
    /// YOLOX conventions: BGR, 0..255, image at the top-left, pad 114.
    pub fn yolox(width: u32, height: u32) -> Self {
        TensorSpec {
            width,
            height,
            fit: Fit::TopLeft,
            pad: 114,
            order: ChannelOrder::Bgr,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            layout: Layout::Nchw,
            dtype: DType::F32,
        }
    }

    /// Ultralytics / YOLOv5 conventions: RGB, /255, centred, pad 114.
    pub fn ultralytics(width: u32, height: u32) -> Self {
        TensorSpec {
            fit: Fit::Center,
            order: ChannelOrder::Rgb,
            scale: 1.0 / 255.0,
            ..Self::yolox(width, height)
        }
    }

    /// Number of elements of the batch-1 tensor.
    pub fn elements(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }

    /// Short human description, for logs and error messages.
    pub fn describe(&self) -> String {
        format!(
            "{}x{} {} {} {} {}",
            self.width,
            self.height,
            self.layout.as_str(),
            self.dtype.as_str(),
            self.order.as_str(),
            self.fit.as_str()
        )
    }
}
