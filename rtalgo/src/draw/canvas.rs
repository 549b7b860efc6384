//! Drawing in place on a video frame in its own format: packed RGB variants and 4:2:0 YUV
//! (I420, NV12), with no colour conversion of the frame. Colours are converted to the
//! frame's format once per call; YUV uses BT.601 limited range, as GStreamer does for SD and
//! for caps without colorimetry.

/// Pixel formats drawn on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Rgb,
    Bgr,
    Rgba,
    Bgra,
    Rgbx,
    Bgrx,
    I420,
    Nv12,
}

impl Format {
    /// Bytes per pixel and offsets of R, G and B, for the packed formats.
    fn packed(self) -> Option<(usize, [usize; 3])> {
        match self {
            Format::Rgb => Some((3, [0, 1, 2])),
            Format::Bgr => Some((3, [2, 1, 0])),
            Format::Rgba | Format::Rgbx => Some((4, [0, 1, 2])),
            Format::Bgra | Format::Bgrx => Some((4, [2, 1, 0])),
            Format::I420 | Format::Nv12 => None,
        }
    }

    /// Number of planes.
    pub fn planes(self) -> usize {
        match self {
            Format::I420 => 3,
            Format::Nv12 => 2,
            _ => 1,
        }
    }
}

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Color {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Color {
    pub const WHITE: Color = Color::rgb(255, 255, 255);
    pub const BLACK: Color = Color::rgb(0, 0, 0);

    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Color { r, g, b }
    }

    /// From 0xRRGGBB (any alpha byte above is ignored).
    pub const fn from_u32(v: u32) -> Self {
        Color::rgb((v >> 16) as u8, (v >> 8) as u8, v as u8)
    }

    /// BT.601 limited-range Y, U, V.
    pub fn yuv(self) -> [u8; 3] {
        let (r, g, b) = (self.r as f32, self.g as f32, self.b as f32);
        let y = 16.0 + 0.2568 * r + 0.5041 * g + 0.0979 * b;
        let u = 128.0 - 0.1482 * r - 0.2910 * g + 0.4392 * b;
        let v = 128.0 + 0.4392 * r - 0.3678 * g - 0.0714 * b;
        [y, u, v].map(|c| c.round().clamp(0.0, 255.0) as u8)
    }

    /// Black or white, whichever reads better on this colour.
    pub fn contrasting(self) -> Color {
        let luma = 0.299 * self.r as f32 + 0.587 * self.g as f32 + 0.114 * self.b as f32;
        if luma > 140.0 {
            Color::BLACK
        } else {
            Color::WHITE
        }
    }
}

/// One plane: its bytes and the bytes per row.
pub struct Plane<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
}

/// A frame to draw on. Coordinates are pixels; rectangles are half-open and clipped to the
/// frame, so callers may pass boxes that leave it.
pub struct Canvas<'a> {
    format: Format,
    width: usize,
    height: usize,
    planes: [Plane<'a>; 3],
}

#[inline]
fn blend(dst: &mut u8, src: u8, alpha: u32) {
    // alpha in 0..=255
    *dst = ((*dst as u32 * (255 - alpha) + src as u32 * alpha + 127) / 255) as u8;
}

impl<'a> Canvas<'a> {
    /// `planes` as many as the format has (extra ones are ignored). Returns `None` when a
    /// plane is too small for the size and stride given.
    pub fn new(
        format: Format,
        width: u32,
        height: u32,
        planes: impl IntoIterator<Item = Plane<'a>>,
    ) -> Option<Self> {
        let (width, height) = (width as usize, height as usize);
        let mut it = planes.into_iter();
        let mut take = || it.next();
        let empty = || Plane {
            data: &mut [],
            stride: 0,
        };
        let planes = match format.planes() {
            1 => [take()?, empty(), empty()],
            2 => [take()?, take()?, empty()],
            _ => [take()?, take()?, take()?],
        };
        let canvas = Canvas {
            format,
            width,
            height,
            planes,
        };
        let ok = (0..format.planes()).all(|p| {
            let (row_bytes, rows) = canvas.plane_size(p);
            let plane = &canvas.planes[p];
            rows == 0
                || (plane.stride >= row_bytes
                    && plane.data.len() >= plane.stride * (rows - 1) + row_bytes)
        });
        ok.then_some(canvas)
    }

    /// Bytes used per row and rows of plane `p`.
    fn plane_size(&self, p: usize) -> (usize, usize) {
        let (cw, ch) = (self.width.div_ceil(2), self.height.div_ceil(2));
        match (self.format, p) {
            (f, 0) if f.packed().is_some() => (self.width * f.packed().unwrap().0, self.height),
            (_, 0) => (self.width, self.height),
            (Format::Nv12, 1) => (cw * 2, ch),
            _ => (cw, ch),
        }
    }

    pub fn width(&self) -> u32 {
        self.width as u32
    }

    pub fn height(&self) -> u32 {
        self.height as u32
    }

    fn clip(&self, x0: i32, y0: i32, x1: i32, y1: i32) -> Option<(usize, usize, usize, usize)> {
        let cx = |v: i32| v.clamp(0, self.width as i32) as usize;
        let cy = |v: i32| v.clamp(0, self.height as i32) as usize;
        let (x0, x1, y0, y1) = (cx(x0), cx(x1), cy(y0), cy(y1));
        (x0 < x1 && y0 < y1).then_some((x0, y0, x1, y1))
    }

    /// Fills [x0, x1) x [y0, y1) with `color`. On 4:2:0 frames the chroma of every 2x2 block
    /// the rectangle touches takes the colour.
    pub fn fill_rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, color: Color) {
        let Some((x0, y0, x1, y1)) = self.clip(x0, y0, x1, y1) else {
            return;
        };
        if let Some((bpp, offsets)) = self.format.packed() {
            let rgb = [color.r, color.g, color.b];
            let plane = &mut self.planes[0];
            for y in y0..y1 {
                let row = &mut plane.data[y * plane.stride..];
                for px in row[x0 * bpp..x1 * bpp].chunks_exact_mut(bpp) {
                    for c in 0..3 {
                        px[offsets[c]] = rgb[c];
                    }
                }
            }
            return;
        }
        let [yv, u, v] = color.yuv();
        let luma = &mut self.planes[0];
        for y in y0..y1 {
            luma.data[y * luma.stride + x0..y * luma.stride + x1].fill(yv);
        }
        let (cx0, cy0, cx1, cy1) = (x0 / 2, y0 / 2, x1.div_ceil(2), y1.div_ceil(2));
        match self.format {
            Format::I420 => {
                for (p, value) in [(1, u), (2, v)] {
                    let plane = &mut self.planes[p];
                    for y in cy0..cy1 {
                        plane.data[y * plane.stride + cx0..y * plane.stride + cx1].fill(value);
                    }
                }
            }
            _ => {
                let plane = &mut self.planes[1];
                for y in cy0..cy1 {
                    let row =
                        &mut plane.data[y * plane.stride + cx0 * 2..y * plane.stride + cx1 * 2];
                    for uv in row.chunks_exact_mut(2) {
                        uv[0] = u;
                        uv[1] = v;
                    }
                }
            }
        }
    }

    /// The outline of a rectangle, `width` pixels wide, inside [x0, x1) x [y0, y1).
    pub fn stroke_rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, width: i32, color: Color) {
        let w = width.max(1);
        // Saturating: boxes from other applications may sit at the ends of i32.
        self.fill_rect(x0, y0, x1, y0.saturating_add(w).min(y1), color);
        self.fill_rect(x0, y1.saturating_sub(w).max(y0), x1, y1, color);
        self.fill_rect(x0, y0, x0.saturating_add(w).min(x1), y1, color);
        self.fill_rect(x1.saturating_sub(w).max(x0), y0, x1, y1, color);
    }

    /// A straight line `width` pixels thick from (x0, y0) to (x1, y1).
    pub fn draw_line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, width: i32, color: Color) {
        // Only the part near the frame is stepped along: points from other applications'
        // metas may be far outside it (or not numbers at all).
        let margin = width.max(1) as f32;
        let Some([x0, y0, x1, y1]) = clip_segment(
            [x0, y0, x1, y1],
            (-margin, -margin),
            (self.width as f32 + margin, self.height as f32 + margin),
        ) else {
            return;
        };
        let (dx, dy) = (x1 - x0, y1 - y0);
        let steps = dx.abs().max(dy.abs()).ceil().max(1.0) as i32;
        let w = width.max(1);
        let half = w / 2;
        for i in 0..=steps {
            let t = i as f32 / steps as f32;
            let x = (x0 + dx * t).round() as i32 - half;
            let y = (y0 + dy * t).round() as i32 - half;
            self.fill_rect(x, y, x + w, y + w, color);
        }
    }

    /// Blends `color` through a coverage mask (`mask_w` x `mask_h`, 0..=255 per pixel) whose
    /// top-left corner is at (x, y). Chroma takes the mean coverage of its 2x2 block.
    pub fn blend_mask(&mut self, x: i32, y: i32, mask: &[u8], mask_w: usize, color: Color) {
        if mask_w == 0 {
            return;
        }
        let mask_h = mask.len() / mask_w;
        let Some((x0, y0, x1, y1)) = self.clip(x, y, x + mask_w as i32, y + mask_h as i32) else {
            return;
        };
        // The mask rows and columns that land in the frame.
        let (mx, my) = ((x0 as i32 - x) as usize, (y0 as i32 - y) as usize);
        let rows = mask.chunks_exact(mask_w).skip(my).take(y1 - y0);
        match self.format.packed() {
            Some((3, offsets)) => {
                blend_rows::<3>(&mut self.planes[0], x0, y0, x1, rows, mx, offsets, color)
            }
            Some((_, offsets)) => {
                blend_rows::<4>(&mut self.planes[0], x0, y0, x1, rows, mx, offsets, color)
            }
            None => {
                let [yv, _, _] = color.yuv();
                let luma = Color::rgb(yv, yv, yv);
                blend_rows::<1>(&mut self.planes[0], x0, y0, x1, rows, mx, [0, 0, 0], luma);
            }
        }
        if self.format.packed().is_some() {
            return;
        }
        let [_, u, v] = color.yuv();
        let width = x1 - x0;
        let mask_row = |py: usize| &mask[(py - y0 + my) * mask_w + mx..][..width];
        let (luma_and_u, rest) = self.planes.split_at_mut(2);
        let chroma = &mut luma_and_u[1];
        for cy in y0 / 2..y1.div_ceil(2) {
            let (ya, yb) = ((2 * cy).max(y0), (2 * cy + 2).min(y1));
            let r0 = mask_row(ya);
            let r1 = (yb - ya == 2).then(|| mask_row(ya + 1));
            for cx in x0 / 2..x1.div_ceil(2) {
                let (xa, xb) = ((2 * cx).max(x0) - x0, (2 * cx + 2).min(x1) - x0);
                let mut sum: u32 = r0[xa..xb].iter().map(|&c| c as u32).sum();
                if let Some(r1) = r1 {
                    sum += r1[xa..xb].iter().map(|&c| c as u32).sum::<u32>();
                }
                let a = sum / 4;
                if a == 0 {
                    continue;
                }
                if self.format == Format::I420 {
                    blend(&mut chroma.data[cy * chroma.stride + cx], u, a);
                    let pv = &mut rest[0];
                    blend(&mut pv.data[cy * pv.stride + cx], v, a);
                } else {
                    let o = cy * chroma.stride + cx * 2;
                    blend(&mut chroma.data[o], u, a);
                    blend(&mut chroma.data[o + 1], v, a);
                }
            }
        }
    }

    /// Pixelates [x0, x1) x [y0, y1): each `block` x `block` square takes its mean colour, so
    /// faces and plates there cannot be read. Blocks are aligned to the frame, so a moving box
    /// does not make them shimmer.
    pub fn pixelate(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, block: u32) {
        let block = block.max(2) as usize & !1; // even, so luma and chroma blocks line up
        let Some((x0, y0, x1, y1)) = self.clip(x0, y0, x1, y1) else {
            return;
        };
        match self.format.packed() {
            Some((3, _)) => pixelate_plane::<3, 3>(&mut self.planes[0], x0, y0, x1, y1, block),
            Some(_) => pixelate_plane::<4, 3>(&mut self.planes[0], x0, y0, x1, y1, block),
            None => {
                pixelate_plane::<1, 1>(&mut self.planes[0], x0, y0, x1, y1, block);
                let (cx0, cy0, cx1, cy1) = (x0 / 2, y0 / 2, x1.div_ceil(2), y1.div_ceil(2));
                let b = block / 2;
                if self.format == Format::I420 {
                    for p in 1..3 {
                        pixelate_plane::<1, 1>(&mut self.planes[p], cx0, cy0, cx1, cy1, b);
                    }
                } else {
                    pixelate_plane::<2, 2>(&mut self.planes[1], cx0, cy0, cx1, cy1, b);
                }
            }
        }
    }
}

/// Blends `color` into the pixels [x0, x1) of consecutive rows from `y0`, through the
/// coverage rows of a mask starting at column `mx`. Generic over the bytes per pixel so the
/// inner loop is fixed-size code; with one byte per pixel only offset 0 (luma) is written.
#[allow(clippy::too_many_arguments)]
fn blend_rows<'m, const BPP: usize>(
    plane: &mut Plane,
    x0: usize,
    y0: usize,
    x1: usize,
    rows: impl Iterator<Item = &'m [u8]>,
    mx: usize,
    offsets: [usize; 3],
    color: Color,
) {
    let rgb = [color.r, color.g, color.b];
    let channels = if BPP == 1 { 1 } else { 3 };
    for (k, coverage) in rows.enumerate() {
        let start = (y0 + k) * plane.stride;
        let dst = &mut plane.data[start + x0 * BPP..start + x1 * BPP];
        for (px, &a) in dst.chunks_exact_mut(BPP).zip(&coverage[mx..mx + (x1 - x0)]) {
            if a == 0 {
                continue;
            }
            for c in 0..channels {
                blend(&mut px[offsets[c]], rgb[c], a as u32);
            }
        }
    }
}

/// Mean-fills `block`-aligned squares of a plane with `bpp` bytes per pixel, the first
/// `channels` of which are averaged (padding bytes are left alone). Rows are walked once to
/// sum and once to fill, a band of blocks at a time, which keeps memory access sequential.
/// Generic over the pixel layout so the per-pixel loops compile to fixed-size code.
fn pixelate_plane<const BPP: usize, const CHANNELS: usize>(
    plane: &mut Plane,
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
    block: usize,
) {
    let bpp = BPP;
    let block = block.max(1);
    let first = x0 - x0 % block;
    let blocks = (x1 - first).div_ceil(block);
    let mut sums = vec![[0u32; 4]; blocks];
    let mut means = vec![[0u8; 4]; blocks];
    let mut by = y0 - y0 % block;
    while by < y1 {
        let (ya, yb) = (by.max(y0), (by + block).min(y1));
        sums.fill([0; 4]);
        for y in ya..yb {
            let row = &plane.data[y * plane.stride..];
            for (b, sum) in sums.iter_mut().enumerate() {
                let xa = (first + b * block).max(x0);
                let xb = (first + (b + 1) * block).min(x1);
                let mut acc = [0u32; CHANNELS];
                for px in row[xa * bpp..xb * bpp].chunks_exact(BPP) {
                    for c in 0..CHANNELS {
                        acc[c] += px[c] as u32;
                    }
                }
                for c in 0..CHANNELS {
                    sum[c] += acc[c];
                }
            }
        }
        for (b, (sum, mean)) in sums.iter().zip(means.iter_mut()).enumerate() {
            let xa = (first + b * block).max(x0);
            let xb = (first + (b + 1) * block).min(x1);
            let n = ((yb - ya) * (xb - xa)) as u32;
            *mean = sum.map(|s| ((s + n / 2) / n) as u8);
        }
        for y in ya..yb {
            let row = &mut plane.data[y * plane.stride..];
            for (b, mean) in means.iter().enumerate() {
                let xa = (first + b * block).max(x0);
                let xb = (first + (b + 1) * block).min(x1);
                for px in row[xa * bpp..xb * bpp].chunks_exact_mut(BPP) {
                    px[..CHANNELS].copy_from_slice(&mean[..CHANNELS]);
                }
            }
        }
        by += block;
    }
}

/// The part of the segment `[x0, y0, x1, y1]` inside the rectangle `lo`..`hi`
/// (Liang-Barsky), or `None` when none is, or a coordinate is not finite.
fn clip_segment(p: [f32; 4], lo: (f32, f32), hi: (f32, f32)) -> Option<[f32; 4]> {
    if !p.iter().all(|v| v.is_finite()) {
        return None;
    }
    // In f64: far points in f32 would leave the clipped ends tens of pixels off.
    let [x0, y0, x1, y1] = p.map(f64::from);
    let (lo, hi) = ((lo.0 as f64, lo.1 as f64), (hi.0 as f64, hi.1 as f64));
    let (dx, dy) = (x1 - x0, y1 - y0);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (q, d) in [
        (x0 - lo.0, -dx),
        (hi.0 - x0, dx),
        (y0 - lo.1, -dy),
        (hi.1 - y0, dy),
    ] {
        if d == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / d;
            if d < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    (t0 <= t1).then(|| [x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy].map(|v| v as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Color = Color::rgb(255, 0, 0);

    fn canvas(format: Format, w: u32, h: u32, bufs: &mut [Vec<u8>]) -> Canvas<'_> {
        let strides: Vec<usize> = match format {
            Format::I420 => vec![w as usize, w.div_ceil(2) as usize, w.div_ceil(2) as usize],
            Format::Nv12 => vec![w as usize, 2 * w.div_ceil(2) as usize],
            f => vec![w as usize * f.packed().unwrap().0],
        };
        Canvas::new(
            format,
            w,
            h,
            bufs.iter_mut()
                .zip(strides)
                .map(|(data, stride)| Plane { data, stride }),
        )
        .unwrap()
    }

    #[test]
    fn rectangles_on_packed_formats_keep_channel_order_and_padding() {
        for (format, bpp, red_at) in [
            (Format::Rgb, 3, 0),
            (Format::Bgr, 3, 2),
            (Format::Rgbx, 4, 0),
            (Format::Bgra, 4, 2),
        ] {
            let mut bufs = vec![vec![7u8; 8 * 4 * bpp]];
            canvas(format, 8, 4, &mut bufs).fill_rect(-3, 1, 2, 3, RED);
            let px = |x: usize, y: usize| &bufs[0][(y * 8 + x) * bpp..(y * 8 + x + 1) * bpp];
            let mut expected = vec![0u8; bpp];
            expected[red_at] = 255;
            if bpp == 4 {
                expected[3] = 7; // alpha / padding untouched
            }
            assert_eq!(px(0, 1), &expected[..], "{format:?}");
            assert_eq!(px(1, 2), &expected[..], "{format:?}");
            assert_eq!(
                px(2, 1),
                &[7u8; 4][..bpp],
                "{format:?}: right of the rectangle"
            );
            assert_eq!(px(0, 0), &[7u8; 4][..bpp], "{format:?}: above it");
        }
    }

    #[test]
    fn rectangles_on_420_formats_set_luma_and_the_touched_chroma() {
        let [y, u, v] = RED.yuv();
        assert_eq!([y, u, v], [81, 90, 240], "BT.601 limited range red");
        let mut i420 = vec![vec![16u8; 8 * 4], vec![128u8; 4 * 2], vec![128u8; 4 * 2]];
        canvas(Format::I420, 8, 4, &mut i420).fill_rect(3, 0, 4, 4, RED);
        assert_eq!(&i420[0][0..8], &[16, 16, 16, 81, 16, 16, 16, 16]);
        assert_eq!(
            &i420[1][0..4],
            &[128, 90, 128, 128],
            "chroma column of pixel 3"
        );
        assert_eq!(&i420[2][4..8], &[128, 240, 128, 128]);
        let mut nv12 = vec![vec![16u8; 8 * 4], vec![128u8; 8 * 2]];
        canvas(Format::Nv12, 8, 4, &mut nv12).fill_rect(3, 0, 4, 4, RED);
        assert_eq!(&nv12[1][0..8], &[128, 128, 90, 240, 128, 128, 128, 128]);
    }

    #[test]
    fn lines_cover_their_path_and_nothing_else() {
        let mut bufs = vec![vec![0u8; 20 * 10 * 3]];
        canvas(Format::Rgb, 20, 10, &mut bufs).draw_line(2.0, 2.0, 17.0, 7.0, 1, RED);
        let red = |x: usize, y: usize| bufs[0][(y * 20 + x) * 3] == 255;
        assert!(red(2, 2) && red(17, 7) && red(11, 5), "ends and middle");
        let lit = bufs[0].chunks(3).filter(|p| p[0] == 255).count();
        assert_eq!(lit, 16, "one pixel per column for a shallow 1 px line");
        assert!(!red(2, 7) && !red(17, 2));
    }

    #[test]
    fn lines_from_far_outside_are_clipped_and_nan_draws_nothing() {
        let mut bufs = vec![vec![0u8; 20 * 10 * 3]];
        // A billion pixels long: stepped along only where it crosses the frame.
        canvas(Format::Rgb, 20, 10, &mut bufs).draw_line(-1e9, 5.0, 1e9, 5.0, 1, RED);
        let row: Vec<bool> = (0..20).map(|x| bufs[0][(5 * 20 + x) * 3] == 255).collect();
        assert!(row.iter().all(|&r| r), "{row:?}");
        assert_eq!(bufs[0].chunks(3).filter(|p| p[0] == 255).count(), 20);
        let mut bufs = vec![vec![0u8; 20 * 10 * 3]];
        let mut c = canvas(Format::Rgb, 20, 10, &mut bufs);
        c.draw_line(f32::NAN, 5.0, 10.0, 5.0, 1, RED);
        c.draw_line(f32::INFINITY, 5.0, 10.0, 5.0, 1, RED);
        c.draw_line(30.0, 30.0, 40.0, 50.0, 1, RED);
        c.stroke_rect(i32::MIN, i32::MIN, i32::MAX, i32::MAX, 2, RED);
        let lit = bufs[0].chunks(3).filter(|p| p[0] == 255).count();
        assert_eq!(lit, 0, "nothing of these is in the frame");
    }

    #[test]
    fn masks_blend_by_coverage() {
        let mut bufs = vec![vec![0u8; 4 * 3]];
        canvas(Format::Rgb, 4, 1, &mut bufs).blend_mask(1, 0, &[255, 128, 0], 3, Color::WHITE);
        assert_eq!(
            bufs[0],
            vec![0, 0, 0, 255, 255, 255, 128, 128, 128, 0, 0, 0]
        );
        let mut i420 = vec![vec![16u8; 4 * 2], vec![128u8; 2], vec![128u8; 2]];
        canvas(Format::I420, 4, 2, &mut i420).blend_mask(0, 0, &[255; 4], 2, RED);
        assert_eq!(&i420[0][..], &[81, 81, 16, 16, 81, 81, 16, 16]);
        assert_eq!((i420[1][0], i420[2][0], i420[1][1]), (90, 240, 128));
    }

    #[test]
    fn pixelate_averages_aligned_blocks() {
        // A 4x4 RGB checkerboard becomes uniform grey in 4x4 blocks.
        let mut data = vec![0u8; 4 * 4 * 3];
        for y in 0..4 {
            for x in 0..4 {
                if (x + y) % 2 == 0 {
                    data[(y * 4 + x) * 3..(y * 4 + x + 1) * 3].fill(200);
                }
            }
        }
        let mut bufs = vec![data];
        canvas(Format::Rgb, 4, 4, &mut bufs).pixelate(0, 0, 4, 4, 4);
        assert!(bufs[0].iter().all(|&b| b == 100), "{:?}", bufs[0]);
    }

    #[test]
    fn a_plane_too_small_is_refused() {
        let mut small = vec![0u8; 10];
        let plane = Plane {
            data: &mut small,
            stride: 12,
        };
        assert!(Canvas::new(Format::Rgbx, 3, 2, [plane]).is_none());
    }
}
