//! `RtTensorMeta`: a model input tensor made from the frame, and how to map boxes back.
//!
//! Structure fields:
//!
//! | field                      | type      | meaning                                           |
//! |----------------------------|-----------|---------------------------------------------------|
//! | `data`                     | GstBuffer | the tensor bytes, batch 1, native endianness      |
//! | `device`                   | string    | where `data` lives: `cpu`                         |
//! | `dtype`                    | string    | `f32`, `f16` or `u8`                              |
//! | `layout`                   | string    | `nchw` or `nhwc`                                  |
//! | `channel-order`            | string    | `rgb` or `bgr`                                    |
//! | `width`, `height`          | gint      | tensor width and height                           |
//! | `channels`                 | gint      | 3                                                 |
//! | `scale-x`, `scale-y`       | gdouble   | tensor pixels per frame pixel                     |
//! | `pad-left`, `pad-top`      | gdouble   | offset of the frame's image inside the tensor     |
//! | `frame-width`, `frame-height` | gint   | size of the frame the tensor was made from        |
//!
//! A point in tensor pixels maps to frame pixels as `x = (tx - pad-left) / scale-x`.

use crate::TENSOR_META;

pub use rtalgo::tensor::{ChannelOrder, DType, Layout, Transform};

/// A model input tensor attached to a frame.
#[derive(Clone, Debug)]
pub struct TensorMeta {
    pub data: gst::Buffer,
    pub dtype: DType,
    pub layout: Layout,
    pub channel_order: ChannelOrder,
    pub width: u32,
    pub height: u32,
    pub channels: u32,
    pub transform: Transform,
}

impl TensorMeta {
    /// Number of bytes the tensor needs (`usize::MAX` when that overflows: no buffer fits).
    pub fn byte_size(&self) -> usize {
        [self.height, self.channels, self.dtype.size() as u32]
            .iter()
            .try_fold(self.width as usize, |n, &k| n.checked_mul(k as usize))
            .unwrap_or(usize::MAX)
    }

    /// Attaches the tensor to `buffer`, replacing one already there.
    pub fn attach(&self, buffer: &mut gst::BufferRef) -> Result<(), gst::glib::BoolError> {
        let mut meta = match gst::meta::CustomMeta::from_mut_buffer(buffer, TENSOR_META) {
            Ok(meta) => meta,
            Err(_) => gst::meta::CustomMeta::add(buffer, TENSOR_META)?,
        };
        let s = meta.mut_structure();
        let t = &self.transform;
        s.set("data", &self.data);
        s.set("device", "cpu");
        s.set("dtype", self.dtype.as_str());
        s.set("layout", self.layout.as_str());
        s.set("channel-order", self.channel_order.as_str());
        s.set("width", self.width as i32);
        s.set("height", self.height as i32);
        s.set("channels", self.channels as i32);
        s.set("scale-x", t.scale_x);
        s.set("scale-y", t.scale_y);
        s.set("pad-left", t.pad_left);
        s.set("pad-top", t.pad_top);
        s.set("frame-width", t.frame_width as i32);
        s.set("frame-height", t.frame_height as i32);
        Ok(())
    }

    /// Reads the tensor attached to `buffer`, if any and if it is well formed.
    pub fn from_buffer(buffer: &gst::BufferRef) -> Option<Self> {
        let meta = gst::meta::CustomMeta::from_buffer(buffer, TENSOR_META).ok()?;
        let s = meta.structure();
        if s.get::<&str>("device").ok()? != "cpu" {
            return None;
        }
        let int = |name: &str| s.get::<i32>(name).ok().filter(|v| *v > 0).map(|v| v as u32);
        let t = TensorMeta {
            data: s.get::<gst::Buffer>("data").ok()?,
            dtype: DType::parse(s.get("dtype").ok()?)?,
            layout: Layout::parse(s.get("layout").ok()?)?,
            channel_order: ChannelOrder::parse(s.get("channel-order").ok()?)?,
            width: int("width")?,
            height: int("height")?,
            channels: int("channels")?,
            transform: Transform {
                scale_x: s.get("scale-x").ok()?,
                scale_y: s.get("scale-y").ok()?,
                pad_left: s.get("pad-left").ok()?,
                pad_top: s.get("pad-top").ok()?,
                frame_width: int("frame-width")?,
                frame_height: int("frame-height")?,
            },
        };
        (t.data.size() >= t.byte_size()).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_short_data() {
        gst::init().unwrap();
        crate::register();
        let mut t = TensorMeta {
            data: gst::Buffer::with_size(2 * 2 * 3 * 4).unwrap(),
            dtype: DType::F32,
            layout: Layout::Nchw,
            channel_order: ChannelOrder::Bgr,
            width: 2,
            height: 2,
            channels: 3,
            transform: Transform {
                scale_x: 0.5,
                scale_y: 0.5,
                pad_left: 0.0,
                pad_top: 1.0,
                frame_width: 4,
                frame_height: 2,
            },
        };
        let mut buffer = gst::Buffer::new();
        t.attach(buffer.get_mut().unwrap()).unwrap();
        let back = TensorMeta::from_buffer(&buffer).unwrap();
        assert_eq!(back.transform, t.transform);
        assert_eq!(back.transform.to_frame(1.0, 2.0), (2.0, 2.0));
        assert_eq!(
            (back.dtype, back.layout, back.channel_order),
            (DType::F32, Layout::Nchw, ChannelOrder::Bgr)
        );

        t.width = 3; // now the data is too small for the declared shape
        t.attach(buffer.get_mut().unwrap()).unwrap();
        assert!(TensorMeta::from_buffer(&buffer).is_none());
    }
}
