//! The plain types of a model input tensor: element type, layout, channel order, and where
//! the frame's image sits inside it. `rtmeta` carries them in `RtTensorMeta`; the
//! preprocessing here ([`crate::spec`], [`crate::letterbox`]) produces them.

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

string_enum!(
    /// Element type of a tensor.
    DType { F32 => "f32", F16 => "f16", U8 => "u8" }
);
string_enum!(
    /// Memory layout of a batch-1 image tensor.
    Layout { Nchw => "nchw", Nhwc => "nhwc" }
);
string_enum!(
    /// Order of the colour channels in a tensor.
    ChannelOrder { Rgb => "rgb", Bgr => "bgr" }
);

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::U8 => 1,
        }
    }
}

/// Where the frame's image sits inside the tensor (letterbox or stretch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transform {
    pub scale_x: f64,
    pub scale_y: f64,
    pub pad_left: f64,
    pub pad_top: f64,
    pub frame_width: u32,
    pub frame_height: u32,
}

impl Transform {
    /// Maps a point from tensor pixels to frame pixels.
    pub fn to_frame(&self, x: f64, y: f64) -> (f64, f64) {
        (
            (x - self.pad_left) / self.scale_x,
            (y - self.pad_top) / self.scale_y,
        )
    }
}
