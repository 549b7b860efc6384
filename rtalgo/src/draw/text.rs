//! Text with a real font (TrueType, rasterised by `fontdue`), glyphs cached per size so a
//! frame's labels cost a few mask blends.

use super::canvas::{Canvas, Color};
use std::collections::HashMap;

struct Glyph {
    xmin: i32,
    /// Bitmap top relative to the baseline (positive up).
    top: i32,
    width: usize,
    advance: f32,
    coverage: Vec<u8>,
}

/// Glyphs kept per size: many times the characters of any label set.
const MAX_CACHED_GLYPHS: usize = 4096;

/// A font at one pixel size.
pub struct Text {
    font: fontdue::Font,
    px: f32,
    ascent: f32,
    height: f32,
    glyphs: HashMap<char, Glyph>,
}

impl Text {
    /// Loads a TrueType/OpenType font from its bytes.
    pub fn new(font_data: &[u8], px: f32) -> Result<Self, String> {
        let font = fontdue::Font::from_bytes(font_data, fontdue::FontSettings::default())
            .map_err(|e| e.to_string())?;
        Ok(Self::with_font(font, px))
    }

    /// The same font at another size (glyphs are rasterised again as needed).
    pub fn resized(&self, px: f32) -> Self {
        Self::with_font(self.font.clone(), px)
    }

    fn with_font(font: fontdue::Font, px: f32) -> Self {
        let (ascent, descent) = font
            .horizontal_line_metrics(px)
            .map_or((px * 0.8, -px * 0.2), |m| (m.ascent, m.descent));
        Text {
            font,
            px,
            ascent,
            height: ascent - descent,
            glyphs: HashMap::new(),
        }
    }

    pub fn px(&self) -> f32 {
        self.px
    }

    /// Height of a line: ascent plus descent, in pixels.
    pub fn line_height(&self) -> i32 {
        self.height.ceil() as i32
    }

    fn glyph(&mut self, c: char) -> &Glyph {
        // Labels from other applications may use any characters: the cache starts again
        // rather than growing without bound.
        if self.glyphs.len() >= MAX_CACHED_GLYPHS && !self.glyphs.contains_key(&c) {
            self.glyphs.clear();
        }
        let (font, px) = (&self.font, self.px);
        self.glyphs.entry(c).or_insert_with(|| {
            let (m, coverage) = font.rasterize(c, px);
            Glyph {
                xmin: m.xmin,
                top: m.ymin + m.height as i32,
                width: m.width,
                advance: m.advance_width,
                coverage,
            }
        })
    }

    /// Width of `text` in pixels.
    pub fn width(&mut self, text: &str) -> i32 {
        text.chars()
            .map(|c| self.glyph(c).advance)
            .sum::<f32>()
            .ceil() as i32
    }

    /// Draws `text` with its top-left corner at (x, y).
    pub fn draw(&mut self, canvas: &mut Canvas, x: i32, y: i32, text: &str, color: Color) {
        let baseline = y + self.ascent.round() as i32;
        let mut pen = x as f32;
        for c in text.chars() {
            let g = self.glyph(c);
            let gx = pen.round() as i32 + g.xmin;
            canvas.blend_mask(gx, baseline - g.top, &g.coverage, g.width, color);
            pen += g.advance;
        }
    }
}
