//! Drawing detections: pixelated regions first (privacy), then box outlines, then labels on
//! a filled tab in the box colour. A tracked object keeps one colour for its whole life
//! (from its track id); untracked ones take their class's colour.

use super::canvas::{Canvas, Color};
use super::text::Text;
use crate::geometry::Rect;
use std::fmt::Write;

/// 20 colours that stay apart from each other and from typical scenes (Tableau 20 order,
/// strong shades first).
const PALETTE: [u32; 20] = [
    0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x17becf, 0xbcbd22,
    0x7f7f7f, 0xaec7e8, 0xffbb78, 0x98df8a, 0xff9896, 0xc5b0d5, 0xc49c94, 0xf7b6d2, 0x9edae5,
    0xdbdb8d, 0xc7c7c7,
];

/// The colour of an object: its track's, else its class's.
pub fn color_of(class_id: u32, track_id: Option<u64>) -> Color {
    let k = match track_id {
        // Consecutive ids differ a lot: a step of 7 goes round all 20 colours.
        Some(t) => (t.wrapping_mul(7) % PALETTE.len() as u64) as usize,
        None => class_id as usize % PALETTE.len(),
    };
    Color::from_u32(PALETTE[k])
}

/// What to draw and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Style {
    pub line_width: i32,
    pub show_label: bool,
    pub show_confidence: bool,
    pub show_track_id: bool,
    /// One colour for every box instead of per track / class.
    pub box_color: Option<Color>,
    /// Label text colour; `None`: black or white, whichever reads on the box colour.
    pub text_color: Option<Color>,
    /// Pixelation block size for blurred objects.
    pub blur_block: u32,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            line_width: 2,
            show_label: true,
            show_confidence: true,
            show_track_id: true,
            box_color: None,
            text_color: None,
            blur_block: 16,
        }
    }
}

/// One object to draw, in frame pixels.
#[derive(Clone, Copy, Debug)]
pub struct Object<'a> {
    pub rect: Rect,
    pub label: &'a str,
    pub class_id: u32,
    pub confidence: f32,
    pub track_id: Option<u64>,
    /// Pixelate the box instead of outlining it.
    pub blur: bool,
}

/// A zone (closed polygon) or line to draw, in frame pixels, with the name of its rule.
#[derive(Clone, Copy, Debug)]
pub struct Shape<'a> {
    pub points: &'a [(f32, f32)],
    pub closed: bool,
    pub label: &'a str,
    /// Drawn highlighted (its rule holds).
    pub active: bool,
}

/// Zones and lines at rest, and while their rule holds.
pub const SHAPE_COLOR: Color = Color::rgb(255, 215, 0);
pub const ACTIVE_SHAPE_COLOR: Color = Color::rgb(230, 40, 40);

/// Draws objects with a style; keeps the font and a text buffer between frames.
pub struct Overlay {
    pub style: Style,
    text: Option<Text>,
    caption: String,
}

impl Overlay {
    /// `text`: the font for labels (`None` draws boxes only).
    pub fn new(style: Style, text: Option<Text>) -> Self {
        Overlay {
            style,
            text,
            caption: String::new(),
        }
    }

    pub fn text(&self) -> Option<&Text> {
        self.text.as_ref()
    }

    fn caption(&mut self, o: &Object) {
        self.caption.clear();
        let s = &self.style;
        if s.show_track_id
            && let Some(t) = o.track_id
        {
            let _ = write!(self.caption, "#{t} ");
        }
        if s.show_label {
            self.caption.push_str(o.label);
        }
        if s.show_confidence {
            let sep = if self.caption.is_empty() || self.caption.ends_with(' ') {
                ""
            } else {
                " "
            };
            let _ = write!(self.caption, "{sep}{:.0}%", o.confidence * 100.0);
        }
        let trimmed = self.caption.trim_end().len();
        self.caption.truncate(trimmed);
    }

    /// Draws zones and lines: outlines in [`SHAPE_COLOR`], thicker and in
    /// [`ACTIVE_SHAPE_COLOR`] while active, with the rule's name at the first point.
    pub fn draw_shapes(&mut self, canvas: &mut Canvas, shapes: &[Shape]) {
        for shape in shapes {
            let (color, width) = if shape.active {
                (ACTIVE_SHAPE_COLOR, self.style.line_width + 2)
            } else {
                (SHAPE_COLOR, self.style.line_width)
            };
            let n = shape.points.len();
            let edges = if shape.closed { n } else { n.saturating_sub(1) };
            for k in 0..edges {
                let (a, b) = (shape.points[k], shape.points[(k + 1) % n]);
                canvas.draw_line(a.0, a.1, b.0, b.1, width, color);
            }
            if let (Some(text), Some(&(x, y))) = (self.text.as_mut(), shape.points.first())
                && !shape.label.is_empty()
            {
                let pad = (text.px() / 6.0).ceil() as i32;
                let (w, h) = (text.width(shape.label) + 2 * pad, text.line_height() + pad);
                let x = (x.round() as i32).clamp(0, (canvas.width() as i32 - w).max(0));
                let y = (y.round() as i32).clamp(0, (canvas.height() as i32 - h).max(0));
                canvas.fill_rect(x, y, x + w, y + h, color);
                text.draw(
                    canvas,
                    x + pad,
                    y + pad / 2,
                    shape.label,
                    color.contrasting(),
                );
            }
        }
    }

    pub fn draw(&mut self, canvas: &mut Canvas, objects: &[Object]) {
        // Far enough out for any frame, near enough that sums of a few sizes fit an i32
        // (boxes from other applications may hold any number).
        let px = |v: f32| v.round().clamp(-1e7, 1e7) as i32;
        for o in objects.iter().filter(|o| o.blur) {
            let r = o.rect;
            canvas.pixelate(
                px(r.x),
                px(r.y),
                px(r.x + r.w),
                px(r.y + r.h),
                self.style.blur_block,
            );
        }
        for o in objects.iter().filter(|o| !o.blur) {
            let r = o.rect;
            let color = self
                .style
                .box_color
                .unwrap_or(color_of(o.class_id, o.track_id));
            canvas.stroke_rect(
                px(r.x),
                px(r.y),
                px(r.x + r.w),
                px(r.y + r.h),
                self.style.line_width,
                color,
            );
        }
        if self.text.is_none() {
            return;
        }
        for o in objects.iter().filter(|o| !o.blur) {
            self.caption(o);
            if self.caption.is_empty() {
                continue;
            }
            let color = self
                .style
                .box_color
                .unwrap_or(color_of(o.class_id, o.track_id));
            let text_color = self.style.text_color.unwrap_or(color.contrasting());
            let text = self.text.as_mut().unwrap();
            let pad = (text.px() / 6.0).ceil() as i32;
            let (w, h) = (
                text.width(&self.caption) + 2 * pad,
                text.line_height() + pad,
            );
            // A tab above the box's top-left corner; inside the box when there is no room.
            let x = px(o.rect.x).clamp(0, (canvas.width() as i32 - w).max(0));
            let top = px(o.rect.y);
            let y = if top - h >= 0 { top - h } else { top.max(0) };
            canvas.fill_rect(x, y, x + w, y + h, color);
            text.draw(canvas, x + pad, y + pad / 2, &self.caption, text_color);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::canvas::{Format, Plane};

    #[test]
    fn tracks_keep_their_colour_and_neighbours_differ() {
        assert_eq!(
            color_of(0, Some(5)),
            color_of(3, Some(5)),
            "the class does not matter"
        );
        for t in 1..40u64 {
            assert_ne!(color_of(0, Some(t)), color_of(0, Some(t + 1)));
        }
        assert_eq!(color_of(2, None), Color::from_u32(PALETTE[2]));
    }

    #[test]
    fn boxes_are_outlined_and_blurred_ones_pixelated() {
        let (w, h) = (64usize, 48usize);
        // Vertical stripes, so pixelation is visible.
        let mut data: Vec<u8> = (0..w * h)
            .flat_map(|i| [((i % w) % 2 * 255) as u8; 3])
            .collect();
        let original = data.clone();
        let mut canvas = Canvas::new(
            Format::Rgb,
            w as u32,
            h as u32,
            [Plane {
                data: &mut data,
                stride: w * 3,
            }],
        )
        .unwrap();
        let objects = [
            Object {
                rect: Rect::new(4.0, 4.0, 20.0, 20.0),
                label: "person",
                class_id: 0,
                confidence: 0.9,
                track_id: Some(3),
                blur: false,
            },
            Object {
                rect: Rect::new(32.0, 16.0, 16.0, 16.0),
                label: "face",
                class_id: 1,
                confidence: 0.9,
                track_id: None,
                blur: true,
            },
        ];
        let mut overlay = Overlay::new(Style::default(), None);
        overlay.draw(&mut canvas, &objects);
        let px = |x: usize, y: usize| &data[(y * w + x) * 3..(y * w + x) * 3 + 3];
        let c = color_of(0, Some(3));
        assert_eq!(px(4, 10), &[c.r, c.g, c.b], "left edge");
        assert_eq!(
            px(23, 10),
            &[c.r, c.g, c.b],
            "right edge (2 px line inside the box)"
        );
        assert_eq!(
            px(12, 12),
            &original[(12 * w + 12) * 3..][..3],
            "inside untouched"
        );
        assert_eq!(
            px(2, 2),
            &original[(2 * w + 2) * 3..][..3],
            "outside untouched"
        );
        // 16x16 blocks of alternating 0/255 columns average to 128.
        assert_eq!(px(33, 17), &[128, 128, 128]);
        assert_eq!(px(47, 31), &[128, 128, 128]);
    }
}
