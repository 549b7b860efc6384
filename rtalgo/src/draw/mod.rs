//! Drawing on video frames in place, in their own pixel format: boxes, labels with a real
//! font, pixelation.
//!
//! * [`canvas`]: a frame (packed RGB variants, I420, NV12) and the primitives.
//! * [`text`]: TrueType text, glyphs cached.
//! * [`overlay`]: detections drawn with a [`overlay::Style`].

pub mod canvas;
pub mod overlay;
pub mod text;

/// Debian's `fonts-dejavu-core`: the default label font.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

#[cfg(test)]
mod tests {
    use super::canvas::{Canvas, Color, Format, Plane};
    use super::text::Text;

    #[test]
    fn text_is_drawn_with_the_font_inside_its_line() {
        let data = std::fs::read(super::DEFAULT_FONT).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (apt install fonts-dejavu-core)",
                super::DEFAULT_FONT
            )
        });
        let mut text = Text::new(&data, 20.0).unwrap();
        let (w, h) = (80usize, 30usize);
        let mut pixels = vec![0u8; w * h * 3];
        let mut canvas = Canvas::new(
            Format::Rgb,
            w as u32,
            h as u32,
            [Plane {
                data: &mut pixels,
                stride: w * 3,
            }],
        )
        .unwrap();
        let width = text.width("Hi 9");
        assert!((25..60).contains(&width), "{width}");
        text.draw(&mut canvas, 5, 2, "Hi 9", Color::WHITE);
        let lit: Vec<(usize, usize)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| pixels[(y * w + x) * 3] > 128)
            .collect();
        assert!(lit.len() > 40, "{} pixels lit", lit.len());
        let (x_max, y_max) = lit
            .iter()
            .fold((0, 0), |a, &(x, y)| (a.0.max(x), a.1.max(y)));
        let (x_min, y_min) = lit
            .iter()
            .fold((w, h), |a, &(x, y)| (a.0.min(x), a.1.min(y)));
        assert!(
            x_min >= 5 && x_max < 5 + width as usize + 1,
            "{x_min}..{x_max}"
        );
        assert!(
            y_min >= 2 && y_max < 2 + text.line_height() as usize,
            "{y_min}..{y_max}"
        );
        // "H" has two vertical strokes: a column in its left stroke is lit top to bottom.
        let column = lit.iter().filter(|&&(x, _)| x == x_min + 1).count();
        assert!(column >= 10, "{column}");
    }
}
