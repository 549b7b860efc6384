//! Where a frame lands inside the tensor, following each model family's own rounding.

use crate::spec::Fit;
use crate::tensor::Transform;

/// The frame's image inside the tensor: its size, offset and scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    pub new_w: u32,
    pub new_h: u32,
    pub left: u32,
    pub top: u32,
    pub transform: Transform,
}

pub fn geometry(frame_w: u32, frame_h: u32, tensor_w: u32, tensor_h: u32, fit: Fit) -> Geometry {
    let (fw, fh, tw, th) = (
        frame_w as f64,
        frame_h as f64,
        tensor_w as f64,
        tensor_h as f64,
    );
    let r = (th / fh).min(tw / fw);
    let (new_w, new_h, left, top, sx, sy) = match fit {
        // YOLOX preproc: int(w * r), padding right/bottom only.
        Fit::TopLeft => ((fw * r) as u32, (fh * r) as u32, 0, 0, r, r),
        // Ultralytics LetterBox: Python's round() (ties to even), odd pixel right/bottom.
        Fit::Center => {
            let new_w = (fw * r).round_ties_even() as u32;
            let new_h = (fh * r).round_ties_even() as u32;
            let dw = (tw - new_w as f64) / 2.0;
            let dh = (th - new_h as f64) / 2.0;
            let left = (dw - 0.1).round_ties_even().max(0.0) as u32;
            let top = (dh - 0.1).round_ties_even().max(0.0) as u32;
            (new_w, new_h, left, top, r, r)
        }
        Fit::Stretch => (tensor_w, tensor_h, 0, 0, tw / fw, th / fh),
    };
    let new_w = new_w.clamp(1, tensor_w);
    let new_h = new_h.clamp(1, tensor_h);
    Geometry {
        new_w,
        new_h,
        left,
        top,
        transform: Transform {
            scale_x: sx,
            scale_y: sy,
            pad_left: left as f64,
            pad_top: top as f64,
            frame_width: frame_w,
            frame_height: frame_h,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yolox_top_left_truncates() {
        // dog.jpg (768x576) into 416: r = 0.5417, 416 x 312, pad bottom only.
        let g = geometry(768, 576, 416, 416, Fit::TopLeft);
        assert_eq!((g.new_w, g.new_h, g.left, g.top), (416, 312, 0, 0));
        // horses.jpg 773x512: 773 * (416/773) is 415.99999999999994 in floating point, so
        // the reference's int() gives 415, and so must we.
        let g = geometry(773, 512, 416, 416, Fit::TopLeft);
        assert_eq!((g.new_w, g.new_h), (415, 275));
    }

    #[test]
    fn ultralytics_center_rounds_and_pads_odd_pixel_bottom() {
        let g = geometry(768, 576, 640, 640, Fit::Center);
        assert_eq!((g.new_w, g.new_h, g.left, g.top), (640, 480, 0, 80));
        // 640x424 keeps its size: dh = 108, top = 108.
        let g = geometry(640, 424, 640, 640, Fit::Center);
        assert_eq!((g.new_w, g.new_h, g.left, g.top), (640, 424, 0, 108));
        // 773x512: new_h = round(423.92) = 424.
        let g = geometry(773, 512, 640, 640, Fit::Center);
        assert_eq!((g.new_w, g.new_h, g.top), (640, 424, 108));
        // An odd remainder: 101 px of padding -> 50 on top, 51 below.
        let g = geometry(640, 539, 640, 640, Fit::Center);
        assert_eq!((g.new_h, g.top), (539, 50));
    }

    #[test]
    fn stretch_and_mapping_back() {
        let g = geometry(800, 400, 400, 400, Fit::Stretch);
        assert_eq!((g.new_w, g.new_h), (400, 400));
        assert_eq!(g.transform.to_frame(200.0, 200.0), (400.0, 200.0));
        let g = geometry(768, 576, 640, 640, Fit::Center);
        let (x, y) = g.transform.to_frame(320.0, 80.0);
        assert!((x - 384.0).abs() < 1e-9 && y.abs() < 1e-9);
    }

    #[test]
    fn tiny_frames_still_get_one_pixel() {
        let g = geometry(1, 10000, 416, 416, Fit::TopLeft);
        assert!(g.new_w >= 1 && g.new_h == 416);
    }
}
