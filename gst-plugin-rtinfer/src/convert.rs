//! Frame to tensor in one pass: bilinear letterbox resize, colour conversion, channel order,
//! normalisation, layout and element type.
//!
//! The resize reproduces OpenCV's `INTER_LINEAR` for 8-bit images (11-bit fixed-point
//! weights, same pixel-centre mapping and border clamping), which is what the reference
//! detector and most training pipelines use. All tables are built once per caps; a frame
//! costs no allocation.

use crate::letterbox::{Geometry, geometry};
use crate::spec::TensorSpec;
use gst_video::prelude::*;
use gst_video::{VideoColorMatrix, VideoColorRange, VideoFormat, VideoFrameRef, VideoInfo};
use half::f16;
use rtmeta::{ChannelOrder, DType, Layout};

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Raw video formats the converter reads.
pub const FORMATS: &[VideoFormat] = &[
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Argb,
    VideoFormat::Abgr,
    VideoFormat::Xrgb,
    VideoFormat::Xbgr,
    VideoFormat::Nv12,
    VideoFormat::Nv21,
    VideoFormat::I420,
    VideoFormat::Yv12,
];

/// Largest frame side accepted, to turn absurd caps into a clear error.
pub const MAX_SIDE: u32 = 16384;

/// Why a converter cannot be made for some caps and spec, or a frame cannot be converted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConvertError {
    #[error("frame size {0}x{1} is not supported (1..{MAX_SIDE} pixels a side)")]
    FrameSize(u32, u32),
    #[error("tensor size {0}x{1} is not usable")]
    TensorSize(u32, u32),
    #[error("a std value of 0 would divide by zero")]
    ZeroStd,
    #[error("video format {0:?} is not supported")]
    Format(VideoFormat),
    /// A frame that does not match its caps.
    #[error("cannot read the frame's channel {channel}: {reason}")]
    Unreadable { channel: usize, reason: String },
    #[error("video plane of {len} bytes (stride {stride}) is too small for its caps")]
    PlaneTooSmall { len: usize, stride: usize },
    /// The caller's tensor buffer: a bug, not bad input.
    #[error("tensor buffer has {have} bytes, {need} needed")]
    TensorBuffer { have: usize, need: usize },
    #[error("tensor buffer is not aligned for its element type")]
    Misaligned,
}

impl ConvertError {
    /// Whether the caps (or the spec asked for) are the problem, rather than one frame.
    pub fn is_negotiation(&self) -> bool {
        matches!(
            self,
            Self::FrameSize(..) | Self::TensorSize(..) | Self::ZeroStd | Self::Format(_)
        )
    }
}

/// Caps of the raw video the converter reads, for pad templates.
pub fn caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(FORMATS.iter().copied())
        .width_range(1..=MAX_SIDE as i32)
        .height_range(1..=MAX_SIDE as i32)
        .build()
}

/// A pad template for the raw video the converter reads.
pub fn pad_template(
    name: &str,
    direction: gst::PadDirection,
    presence: gst::PadPresence,
) -> gst::PadTemplate {
    gst::PadTemplate::new(name, direction, presence, &caps()).expect("valid pad template")
}

mod sealed {
    /// Only the types below: `as_bytes`/`from_bytes` reinterpret bytes as them, which is
    /// sound only for plain numbers (no padding, every bit pattern valid).
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for u8 {}
}

/// Element types a tensor can be written as (sealed: f32, f16 and u8).
pub trait Element: sealed::Sealed + Copy + Default + 'static {
    fn from_f32(v: f32) -> Self;

    /// Normalises one channel's row of 8-bit values: `dst[x] = lut[src[x]]`, where `lut` was
    /// built by [`Norm::value`] from `norm`.
    #[inline(always)]
    fn normalise(src: &[u8], dst: &mut [Self], lut: &[Self; 256], _norm: Norm) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = lut[*s as usize];
        }
    }
}
impl Element for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }

    /// The table's own arithmetic (same operations, same order, so the same bits), which
    /// vectorises where a table lookup cannot.
    #[inline(always)]
    fn normalise(src: &[u8], dst: &mut [f32], _lut: &[f32; 256], norm: Norm) {
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            // SAFETY: checked just above.
            return unsafe { avx2::normalise(src, dst, norm) };
        }
        for (d, s) in dst.iter_mut().zip(src) {
            *d = norm.value(*s);
        }
    }
}
impl Element for f16 {
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}
impl Element for u8 {
    fn from_f32(v: f32) -> Self {
        v.round().clamp(0.0, 255.0) as u8
    }
}

/// Views raw tensor bytes as elements; `None` if misaligned or of the wrong length.
pub fn cast_mut<T: Element>(bytes: &mut [u8]) -> Option<&mut [T]> {
    // SAFETY: f32, f16 and u8 accept every bit pattern.
    let (head, body, tail) = unsafe { bytes.align_to_mut::<T>() };
    (head.is_empty() && tail.is_empty()).then_some(body)
}

/// The bytes of an f32 scratch tensor (f32 storage keeps any element type aligned).
pub fn as_bytes_mut(v: &mut [f32]) -> &mut [u8] {
    // SAFETY: u8 has no alignment or validity requirements.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), std::mem::size_of_val(v)) }
}

/// The bytes of a slice of tensor elements.
pub fn as_raw_bytes<T: Element>(v: &[T]) -> &[u8] {
    // SAFETY: u8 has no alignment or validity requirements; the length covers `v` exactly.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

/// Read-only counterpart of [`cast_mut`].
pub fn cast<T: Element>(bytes: &[u8]) -> Option<&[T]> {
    // SAFETY: as in cast_mut.
    let (head, body, tail) = unsafe { bytes.align_to::<T>() };
    (head.is_empty() && tail.is_empty()).then_some(body)
}

/// One channel's normalisation: `(v * scale - mean) / std`.
#[derive(Clone, Copy, Debug)]
pub struct Norm {
    scale: f32,
    mean: f32,
    std: f32,
}

impl Norm {
    fn new(spec: &TensorSpec, channel: usize) -> Self {
        Norm {
            scale: spec.scale,
            mean: spec.mean[channel],
            std: spec.std[channel],
        }
    }

    #[inline(always)]
    fn value(self, v: u8) -> f32 {
        (v as f32 * self.scale - self.mean) / self.std
    }
}

/// Bilinear taps of one output coordinate: source indices (or byte offsets) and 11-bit
/// weights.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap {
    i0: u32,
    i1: u32,
    w0: i32,
    w1: i32,
}

const COEF_SCALE: f32 = 2048.0;

/// OpenCV's INTER_LINEAR coordinate mapping from `dst` samples onto `src` samples.
fn taps(src: u32, dst: u32) -> Vec<Tap> {
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let mut f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            f -= s as f32;
            if s < 0 {
                s = 0;
                f = 0.0;
            }
            if s >= src as i64 - 1 {
                s = src as i64 - 1;
                f = 0.0;
            }
            let i0 = s as u32;
            Tap {
                i0,
                i1: (i0 + 1).min(src - 1),
                w0: ((1.0 - f) * COEF_SCALE).round() as i32,
                w1: (f * COEF_SCALE).round() as i32,
            }
        })
        .collect()
}

/// Combines two horizontal passes (already shifted right by 4) as OpenCV's 8-bit vertical
/// pass does: `((b0 * h0) >> 16 + (b1 * h1) >> 16 + 2) >> 2`. Every value fits 16 bits
/// (h <= 255 * 2048 >> 4, b <= 2048), so this is the 32-bit formula to the bit, and
/// vectorises as a high-half 16-bit multiply.
#[inline(always)]
fn vmix(h0: i16, h1: i16, b0: i16, b1: i16) -> u8 {
    let mulhi = |a: i16, b: i16| ((a as i32 * b as i32) >> 16) as i16;
    ((mulhi(b0, h0) + mulhi(b1, h1) + 2) >> 2).clamp(0, 255) as u8
}

/// Taps with source indices turned into byte offsets: `index * pstride + offset`.
fn scaled(taps: &[Tap], pstride: u32, offset: u32) -> Vec<Tap> {
    taps.iter()
        .map(|t| Tap {
            i0: t.i0 * pstride + offset,
            i1: t.i1 * pstride + offset,
            ..*t
        })
        .collect()
}

/// One channel of the resize, done as OpenCV does it: a horizontal pass over each source
/// row an output row needs (kept for the next output row, which often needs it too), then
/// a vertical pass that mixes two such rows. Both passes are the per-pixel formula split
/// in two, so the result is the same to the bit; the vertical pass vectorises.
struct Resizer {
    xs: RowTaps,
    /// Source rows.
    ys: Vec<Tap>,
    /// Horizontal passes of the source rows `rows`, shifted right by 4.
    h: [Vec<i16>; 2],
    rows: [usize; 2],
}

/// A channel's horizontal taps (byte offsets within a source row), with their AVX2 form
/// when the CPU has AVX2.
struct RowTaps {
    taps: Vec<Tap>,
    #[cfg(target_arch = "x86_64")]
    simd: Option<avx2::Taps>,
}

impl RowTaps {
    /// The horizontal pass of the source row at byte `start` of `data` into `out`.
    ///
    /// # Safety
    /// Every tap of the row at `start` is within `data`.
    #[inline(always)]
    unsafe fn pass(&self, data: &[u8], start: usize, out: &mut [i16]) {
        // SAFETY: the caller's bound on the row.
        let src = unsafe { data.get_unchecked(start..) };
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = &self.simd {
            // The gathers read 4 bytes from each offset: the plane's last row may not have
            // them, and takes the portable pass.
            if self.taps.last().map_or(0, |t| t.i1) as usize + 4 <= src.len() {
                // SAFETY: AVX2 was detected for `simd`; the reads are bounded just above.
                return unsafe { avx2::hpass(src, t, &self.taps, out) };
            }
        }
        // SAFETY: the caller's bound.
        unsafe { hpass(src, &self.taps, out) }
    }
}

impl Resizer {
    fn new(xs: Vec<Tap>, ys: Vec<Tap>) -> Self {
        let n = xs.len();
        Resizer {
            xs: RowTaps {
                #[cfg(target_arch = "x86_64")]
                simd: avx2::available().then(|| avx2::Taps::new(&xs)),
                taps: xs,
            },
            ys,
            h: [vec![0; n], vec![0; n]],
            rows: [usize::MAX; 2],
        }
    }

    /// Checks that every tap fits in `data`; forgets the previous frame's rows.
    fn start(&mut self, data: &[u8], stride: usize) -> Result<(), ConvertError> {
        let last_x = self.xs.taps.last().map_or(0, |t| t.i1) as usize;
        let last_y = self.ys.last().map_or(0, |t| t.i1) as usize;
        if last_x >= stride.max(1) || last_y * stride + last_x >= data.len() {
            let len = data.len();
            return Err(ConvertError::PlaneTooSmall { len, stride });
        }
        self.rows = [usize::MAX; 2];
        Ok(())
    }

    /// Writes output row `dy` into `out`.
    ///
    /// # Safety
    /// [`Self::start`] accepted `data` and `stride`.
    #[inline(always)]
    unsafe fn row(&mut self, data: &[u8], stride: usize, dy: usize, out: &mut [u8]) {
        let ty = self.ys[dy];
        let (a, b) = (ty.i0 as usize, ty.i1 as usize);
        if self.rows[0] != a {
            if self.rows[1] == a {
                self.h.swap(0, 1);
                self.rows.swap(0, 1);
            } else {
                // SAFETY: start() bounded row `a` and every tap.
                unsafe { self.xs.pass(data, a * stride, &mut self.h[0]) };
                self.rows[0] = a;
            }
        }
        if self.rows[1] != b {
            // SAFETY: as above.
            unsafe { self.xs.pass(data, b * stride, &mut self.h[1]) };
            self.rows[1] = b;
        }
        let [h0, h1] = &self.h;
        let (b0, b1) = (ty.w0 as i16, ty.w1 as i16);
        #[cfg(target_arch = "x86_64")]
        if self.xs.simd.is_some() {
            // SAFETY: AVX2 was detected for `simd`.
            return unsafe { avx2::vpass(h0, h1, b0, b1, out) };
        }
        for ((o, a), b) in out.iter_mut().zip(h0).zip(h1) {
            *o = vmix(*a, *b, b0, b1);
        }
    }
}

/// OpenCV's horizontal pass of one source row, `src[i0] * w0 + src[i1] * w1` per tap,
/// shifted right by 4 as its vertical pass begins with.
///
/// # Safety
/// Every tap's offsets must be within `src`.
#[inline(always)]
unsafe fn hpass(src: &[u8], xs: &[Tap], out: &mut [i16]) {
    for (o, t) in out.iter_mut().zip(xs) {
        // SAFETY: the caller's bound.
        unsafe {
            *o = ((*src.get_unchecked(t.i0 as usize) as i32 * t.w0
                + *src.get_unchecked(t.i1 as usize) as i32 * t.w1)
                >> 4) as i16;
        }
    }
}

/// How to read RGB out of a frame.
#[derive(Clone, Debug)]
enum Source {
    /// Packed RGB variants: bytes per pixel and the offsets of R, G and B.
    Packed { bpp: usize, rgb: [usize; 3] },
    /// Planar or semi-planar YUV 4:2:0 with its conversion to RGB.
    Yuv420(Box<YuvToRgb>),
}

/// A packed RGB format's bytes per pixel and the offsets of R, G and B.
pub fn packed_layout(format: VideoFormat) -> Option<(usize, [usize; 3])> {
    use VideoFormat::*;
    Some(match format {
        Rgb => (3, [0, 1, 2]),
        Bgr => (3, [2, 1, 0]),
        Rgba | Rgbx => (4, [0, 1, 2]),
        Bgra | Bgrx => (4, [2, 1, 0]),
        Argb | Xrgb => (4, [1, 2, 3]),
        Abgr | Xbgr => (4, [3, 2, 1]),
        _ => return None,
    })
}

impl Source {
    fn for_format(format: VideoFormat, info: &VideoInfo) -> Option<Self> {
        use VideoFormat::*;
        if let Some((bpp, rgb)) = packed_layout(format) {
            return Some(Source::Packed { bpp, rgb });
        }
        match format {
            Nv12 | Nv21 | I420 | Yv12 => Some(Source::Yuv420(Box::new(YuvToRgb::new(info)))),
            _ => None,
        }
    }
}

/// YCbCr to RGB for a frame's colour matrix and range:
/// `R = L + r_v*V'`, `G = L + g_u*U' + g_v*V'`, `B = L + b_u*U'`, with
/// `L = (Y - y_off) * y_mul` and `U' = (U - 128) * c_mul` (likewise V').
#[derive(Clone, Copy, Debug)]
pub struct YuvCoefficients {
    pub y_off: f64,
    pub y_mul: f64,
    pub c_mul: f64,
    pub r_v: f64,
    pub g_u: f64,
    pub g_v: f64,
    pub b_u: f64,
}

impl YuvCoefficients {
    pub fn new(info: &VideoInfo) -> Self {
        let c = info.colorimetry();
        let (kr, kb) = match c.matrix() {
            VideoColorMatrix::Bt709 => (0.2126, 0.0722),
            VideoColorMatrix::Bt2020 => (0.2627, 0.0593),
            _ => (0.299, 0.114),
        };
        let full = c.range() == VideoColorRange::Range0_255;
        let (y_off, y_mul, c_mul) = if full {
            (0.0, 1.0, 1.0)
        } else {
            (16.0, 255.0 / 219.0, 255.0 / 224.0)
        };
        let kg = 1.0 - kr - kb;
        YuvCoefficients {
            y_off,
            y_mul,
            c_mul,
            r_v: 2.0 * (1.0 - kr),
            g_u: -2.0 * (1.0 - kb) * kb / kg,
            g_v: -2.0 * (1.0 - kr) * kr / kg,
            b_u: 2.0 * (1.0 - kb),
        }
    }
}

/// YCbCr to RGB for the frame's colour matrix and range, in 16.16 fixed point: each term is
/// an integer product, so the AVX2 version computes the same bits with multiplies (a table
/// per term took five gathers per eight pixels).
#[derive(Clone, Debug)]
struct YuvToRgb {
    y_off: i32,
    y_mul: i32,
    r_v: i32,
    g_u: i32,
    g_v: i32,
    b_u: i32,
}

impl YuvToRgb {
    fn new(info: &VideoInfo) -> Self {
        let k = YuvCoefficients::new(info);
        let fixed = |x: f64| (x * 65536.0).round() as i32;
        YuvToRgb {
            y_off: k.y_off as i32,
            y_mul: fixed(k.y_mul),
            r_v: fixed(k.r_v * k.c_mul),
            g_u: fixed(k.g_u * k.c_mul),
            g_v: fixed(k.g_v * k.c_mul),
            b_u: fixed(k.b_u * k.c_mul),
        }
    }

    /// Converts rows of Y, U and V into rows of R, G and B.
    #[inline(always)]
    fn rows(&self, [y, u, v]: &[Vec<u8>; 3], [r, g, b]: &mut [Vec<u8>; 3]) {
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            // SAFETY: checked just above.
            return unsafe { avx2::yuv_to_rgb(self, [y, u, v], [r, g, b]) };
        }
        for (((((r, g), b), y), u), v) in r.iter_mut().zip(g).zip(b).zip(y).zip(u).zip(v) {
            [*r, *g, *b] = self.rgb(*y, *u, *v);
        }
    }

    /// Every product fits i32: |(255 - 16) * 1.17 * 65536| and |128 * 2.12 * 65536| are
    /// below 2^25.
    #[inline(always)]
    fn rgb(&self, y: u8, u: u8, v: u8) -> [u8; 3] {
        // The rounding offset (one half) is added to the luma term.
        let l = (y as i32 - self.y_off) * self.y_mul + 0x8000;
        let (u, v) = (u as i32 - 128, v as i32 - 128);
        let q = |x: i32| (x >> 16).clamp(0, 255) as u8;
        [
            q(l + self.r_v * v),
            q(l + self.g_u * u + self.g_v * v),
            q(l + self.b_u * u),
        ]
    }
}

/// Normalisation lookup tables, one per tensor channel, of the tensor's element type.
enum Luts {
    F32(Box<[[f32; 256]; 3]>),
    F16(Box<[[f16; 256]; 3]>),
    U8(Box<[[u8; 256]; 3]>),
}

fn luts<T: Element>(spec: &TensorSpec) -> Box<[[T; 256]; 3]> {
    let mut l = Box::new([[T::default(); 256]; 3]);
    for (k, table) in l.iter_mut().enumerate() {
        for (v, out) in table.iter_mut().enumerate() {
            *out = T::from_f32(Norm::new(spec, k).value(v as u8));
        }
    }
    l
}

/// Converts frames of one video format and size into tensors of one spec.
pub struct Converter {
    spec: TensorSpec,
    geometry: Geometry,
    source: Source,
    /// One per source channel: R, G, B for packed RGB; Y, U, V for YUV.
    resizers: [Resizer; 3],
    /// The current output row of each source channel.
    rows: [Vec<u8>; 3],
    /// The current output row in R, G and B (YUV sources only; packed sources use `rows`).
    rgb: [Vec<u8>; 3],
    perm: [usize; 3],
    norms: [Norm; 3],
    luts: Luts,
}

impl Converter {
    pub fn new(spec: &TensorSpec, info: &VideoInfo) -> Result<Self, ConvertError> {
        let (fw, fh) = (info.width(), info.height());
        if fw == 0 || fh == 0 || fw > MAX_SIDE || fh > MAX_SIDE {
            return Err(ConvertError::FrameSize(fw, fh));
        }
        if spec.width == 0 || spec.height == 0 || spec.width > MAX_SIDE || spec.height > MAX_SIDE {
            return Err(ConvertError::TensorSize(spec.width, spec.height));
        }
        if spec.std.contains(&0.0) {
            return Err(ConvertError::ZeroStd);
        }
        let source =
            Source::for_format(info.format(), info).ok_or(ConvertError::Format(info.format()))?;
        let g = geometry(fw, fh, spec.width, spec.height, spec.fit);
        let (xs, ys) = (taps(fw, g.new_w), taps(fh, g.new_h));
        let resizers = match &source {
            Source::Packed { bpp, rgb } => {
                rgb.map(|off| Resizer::new(scaled(&xs, *bpp as u32, off as u32), ys.clone()))
            }
            Source::Yuv420(_) => {
                let (cxs, cys) = (taps(fw.div_ceil(2), g.new_w), taps(fh.div_ceil(2), g.new_h));
                let chroma = |comp: u8| {
                    let pstride = info.comp_pstride(comp) as u32;
                    Resizer::new(scaled(&cxs, pstride, 0), cys.clone())
                };
                [Resizer::new(xs, ys), chroma(1), chroma(2)]
            }
        };
        let row = || vec![0u8; g.new_w as usize];
        Ok(Converter {
            spec: spec.clone(),
            geometry: g,
            source,
            resizers,
            rows: [row(), row(), row()],
            rgb: [row(), row(), row()],
            perm: match spec.order {
                ChannelOrder::Rgb => [0, 1, 2],
                ChannelOrder::Bgr => [2, 1, 0],
            },
            norms: std::array::from_fn(|k| Norm::new(spec, k)),
            luts: match spec.dtype {
                DType::F32 => Luts::F32(luts(spec)),
                DType::F16 => Luts::F16(luts(spec)),
                DType::U8 => Luts::U8(luts(spec)),
            },
        })
    }

    pub fn spec(&self) -> &TensorSpec {
        &self.spec
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Number of bytes a tensor of this converter's spec takes.
    pub fn byte_size(&self) -> usize {
        self.spec.elements() * self.spec.dtype.size()
    }

    /// Writes the tensor of `frame` into `out` (exactly [`Self::byte_size`] bytes).
    pub fn convert(
        &mut self,
        frame: &VideoFrameRef<&gst::BufferRef>,
        out: &mut [u8],
    ) -> Result<(), ConvertError> {
        if out.len() != self.byte_size() {
            let (have, need) = (out.len(), self.byte_size());
            return Err(ConvertError::TensorBuffer { have, need });
        }
        match self.spec.dtype {
            DType::F32 => self.convert_typed::<f32>(frame, out),
            DType::F16 => self.convert_typed::<f16>(frame, out),
            DType::U8 => self.convert_typed::<u8>(frame, out),
        }
    }

    fn convert_typed<T: Element>(
        &mut self,
        frame: &VideoFrameRef<&gst::BufferRef>,
        out: &mut [u8],
    ) -> Result<(), ConvertError> {
        let out = cast_mut::<T>(out).ok_or(ConvertError::Misaligned)?;
        let lut: &[[T; 256]; 3] = match &self.luts {
            Luts::F32(l) => cast_luts(l),
            Luts::F16(l) => cast_luts(l),
            Luts::U8(l) => cast_luts(l),
        };
        let place = Placement::new(&self.spec, &self.geometry, self.perm);
        place.fill_padding(out, lut, self.spec.pad);
        // Each source channel's plane (bytes from the channel's first sample) and stride.
        let info = frame.info();
        let mut planes: [(&[u8], usize); 3] = [(&[], 0); 3];
        for (k, p) in planes.iter_mut().enumerate() {
            // Packed taps hold each component's offset within the pixel themselves.
            let (data, stride) = match self.source {
                Source::Packed { .. } => (frame.plane_data(0), info.stride()[0]),
                Source::Yuv420(_) => (frame.comp_data(k as u32), info.comp_stride(k as u8)),
            };
            let data = data.map_err(|e| ConvertError::Unreadable {
                channel: k,
                reason: e.to_string(),
            })?;
            let stride = stride as usize;
            self.resizers[k].start(data, stride)?;
            *p = (data, stride);
        }
        for dy in 0..self.geometry.new_h as usize {
            for ((r, row), (data, stride)) in
                self.resizers.iter_mut().zip(&mut self.rows).zip(planes)
            {
                // SAFETY: start() accepted this plane.
                unsafe { r.row(data, stride, dy, row) };
            }
            let rgb = match &self.source {
                Source::Packed { .. } => &self.rows,
                Source::Yuv420(conv) => {
                    conv.rows(&self.rows, &mut self.rgb);
                    &self.rgb
                }
            };
            place.emit_row(out, lut, &self.norms, rgb, dy);
        }
        Ok(())
    }
}

/// Where the resized image and the padding go in the tensor.
#[derive(Clone, Copy)]
struct Placement {
    layout: Layout,
    tw: usize,
    th: usize,
    left: usize,
    top: usize,
    new_w: usize,
    new_h: usize,
    /// Tensor channel k takes RGB component perm[k].
    perm: [usize; 3],
}

impl Placement {
    fn new(spec: &TensorSpec, g: &Geometry, perm: [usize; 3]) -> Self {
        Placement {
            layout: spec.layout,
            tw: spec.width as usize,
            th: spec.height as usize,
            left: g.left as usize,
            top: g.top as usize,
            new_w: g.new_w as usize,
            new_h: g.new_h as usize,
            perm,
        }
    }

    fn fill_padding<T: Element>(&self, out: &mut [T], lut: &[[T; 256]; 3], pad: u8) {
        let Placement {
            tw,
            th,
            left: l,
            top: t,
            new_w: nw,
            new_h: nh,
            ..
        } = *self;
        let pad: [T; 3] = std::array::from_fn(|k| lut[k][pad as usize]);
        let mut fill = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
            if cols.is_empty() {
                return;
            }
            for y in rows {
                match self.layout {
                    Layout::Nchw => {
                        for (k, v) in pad.iter().enumerate() {
                            let base = k * tw * th + y * tw;
                            out[base + cols.start..base + cols.end].fill(*v);
                        }
                    }
                    Layout::Nhwc => {
                        for px in out[(y * tw + cols.start) * 3..(y * tw + cols.end) * 3]
                            .chunks_exact_mut(3)
                        {
                            px.copy_from_slice(&pad);
                        }
                    }
                }
            }
        };
        fill(0..t, 0..tw);
        fill(t + nh..th, 0..tw);
        fill(t..t + nh, 0..l);
        fill(t..t + nh, l + nw..tw);
    }

    /// Writes row `dy` of the resized image (R, G and B rows) into the tensor.
    #[inline]
    fn emit_row<T: Element>(
        &self,
        out: &mut [T],
        lut: &[[T; 256]; 3],
        norms: &[Norm; 3],
        rgb: &[Vec<u8>; 3],
        dy: usize,
    ) {
        let (y, x0, nw, p) = (self.top + dy, self.left, self.new_w, self.perm);
        match self.layout {
            Layout::Nchw => {
                for k in 0..3 {
                    let base = k * self.tw * self.th + y * self.tw + x0;
                    T::normalise(
                        &rgb[p[k]][..nw],
                        &mut out[base..base + nw],
                        &lut[k],
                        norms[k],
                    );
                }
            }
            Layout::Nhwc => {
                let base = (y * self.tw + x0) * 3;
                let dst = &mut out[base..base + nw * 3];
                let [c0, c1, c2] = [&rgb[p[0]], &rgb[p[1]], &rgb[p[2]]];
                for (((d, a), b), c) in dst.chunks_exact_mut(3).zip(c0).zip(c1).zip(c2) {
                    d[0] = lut[0][*a as usize];
                    d[1] = lut[1][*b as usize];
                    d[2] = lut[2][*c as usize];
                }
            }
        }
    }
}

/// The tables are built for the converter's dtype, so `T` always matches `U` here.
fn cast_luts<U: Element, T: Element>(l: &[[U; 256]; 3]) -> &[[T; 256]; 3] {
    assert_eq!(std::any::TypeId::of::<U>(), std::any::TypeId::of::<T>());
    // SAFETY: same type, checked above.
    unsafe { &*(l as *const [[U; 256]; 3] as *const [[T; 256]; 3]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Fit;

    fn frame_buffer(info: &VideoInfo, fill: impl Fn(usize, usize) -> [u8; 3]) -> gst::Buffer {
        // Packed RGB test frames only.
        let mut buf = gst::Buffer::with_size(info.size()).unwrap();
        {
            let b = buf.get_mut().unwrap();
            let mut map = b.map_writable().unwrap();
            let stride = info.stride()[0] as usize;
            for y in 0..info.height() as usize {
                for x in 0..info.width() as usize {
                    let o = y * stride + x * 3;
                    map[o..o + 3].copy_from_slice(&fill(x, y));
                }
            }
        }
        buf
    }

    fn run(spec: &TensorSpec, info: &VideoInfo, buf: &gst::Buffer) -> Vec<u8> {
        let mut conv = Converter::new(spec, info).unwrap();
        let frame = VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), info).unwrap();
        let mut out = vec![0u8; conv.byte_size() + 8];
        // Use an aligned window of the vector.
        let off = out.as_ptr().align_offset(4);
        let n = conv.byte_size();
        conv.convert(&frame, &mut out[off..off + n]).unwrap();
        out[off..off + n].to_vec()
    }

    #[test]
    fn taps_match_opencv_for_identity_and_halving() {
        let t = taps(4, 4);
        assert!(
            t.iter()
                .enumerate()
                .all(|(i, t)| t.i0 as usize == i && t.w0 == 2048 && t.w1 == 0)
        );
        // 4 -> 2: centres at 0.5 and 2.5, i.e. equal weights of pixels (0,1) and (2,3).
        let t = taps(4, 2);
        assert_eq!(
            t[0],
            Tap {
                i0: 0,
                i1: 1,
                w0: 1024,
                w1: 1024
            }
        );
        assert_eq!(
            t[1],
            Tap {
                i0: 2,
                i1: 3,
                w0: 1024,
                w1: 1024
            }
        );
        // Upscaling clamps at both borders.
        let t = taps(2, 4);
        assert_eq!((t[0].i0, t[0].w0), (0, 2048));
        assert_eq!((t[3].i0, t[3].w0), (1, 2048));
    }

    #[test]
    fn letterbox_bgr_nchw_f32_identity_values_and_padding() {
        gst::init().unwrap();
        let info = VideoInfo::builder(VideoFormat::Rgb, 4, 2).build().unwrap();
        let buf = frame_buffer(&info, |x, y| [10 * x as u8, 100 + y as u8, 200]);
        let spec = TensorSpec::yolox(4, 4); // 4x2 image at the top, 2 rows of pad
        let out = run(&spec, &info, &buf);
        let t = cast::<f32>(&out).unwrap();
        let at = |c: usize, y: usize, x: usize| t[c * 16 + y * 4 + x];
        // BGR order: channel 0 is blue.
        assert_eq!(at(0, 0, 3), 200.0);
        assert_eq!(at(1, 1, 2), 101.0);
        assert_eq!(at(2, 1, 3), 30.0);
        assert!((0..3).all(|c| (2..4).all(|y| (0..4).all(|x| at(c, y, x) == 114.0))));
    }

    #[test]
    fn normalised_nhwc_rgb_and_u8() {
        gst::init().unwrap();
        let info = VideoInfo::builder(VideoFormat::Rgb, 2, 2).build().unwrap();
        let buf = frame_buffer(&info, |_, _| [255, 0, 51]);
        let mut spec = TensorSpec::ultralytics(2, 2);
        spec.layout = Layout::Nhwc;
        spec.mean = [0.5, 0.0, 0.0];
        spec.std = [0.5, 1.0, 1.0];
        let out = run(&spec, &info, &buf);
        let t = cast::<f32>(&out).unwrap();
        let want = [1.0, 0.0, 0.2];
        assert!(
            t[0..3].iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{:?}",
            &t[0..3]
        );

        spec.dtype = DType::U8;
        spec.scale = 1.0;
        spec.mean = [0.0; 3];
        spec.std = [1.0; 3];
        assert_eq!(&run(&spec, &info, &buf)[0..3], &[255, 0, 51]);
    }

    #[test]
    fn yuv_gray_frame_is_gray() {
        gst::init().unwrap();
        let info = VideoInfo::builder(VideoFormat::I420, 8, 6).build().unwrap();
        let mut buf = gst::Buffer::with_size(info.size()).unwrap();
        {
            let mut map = buf.get_mut().unwrap().map_writable().unwrap();
            let y_size = info.offset()[1];
            map[..y_size].fill(126); // limited range: (126-16)*255/219 = 128.08
            map[y_size..].fill(128);
        }
        let mut spec = TensorSpec::yolox(8, 8);
        spec.fit = Fit::Stretch;
        let out = run(&spec, &info, &buf);
        let t = cast::<f32>(&out).unwrap();
        assert!(t.iter().all(|v| *v == 128.0), "{:?}", &t[..8]);
    }

    /// The resize as one formula per output sample (OpenCV's, in 32 bits), for comparison
    /// with the converter's two passes and their AVX2 versions.
    fn reference_sample(plane: &[u8], stride: usize, x: &Tap, y: &Tap) -> u8 {
        let at = |row: u32, off: u32| plane[row as usize * stride + off as usize] as i32;
        let h0 = at(y.i0, x.i0) * x.w0 + at(y.i0, x.i1) * x.w1;
        let h1 = at(y.i1, x.i0) * x.w0 + at(y.i1, x.i1) * x.w1;
        ((((y.w0 * (h0 >> 4)) >> 16) + ((y.w1 * (h1 >> 4)) >> 16) + 2) >> 2).clamp(0, 255) as u8
    }

    #[test]
    fn two_passes_match_the_per_sample_formula() {
        gst::init().unwrap();
        for (format, (fw, fh)) in [
            (VideoFormat::I420, (768, 576)),
            (VideoFormat::Nv12, (333, 201)),
            (VideoFormat::Bgrx, (97, 61)),
            (VideoFormat::Rgb, (40, 300)),
        ] {
            let info = VideoInfo::builder(format, fw, fh).build().unwrap();
            let mut spec = TensorSpec::yolox(416, 416);
            spec.fit = Fit::Stretch;
            spec.dtype = DType::U8;
            spec.order = ChannelOrder::Rgb;
            let mut conv = Converter::new(&spec, &info).unwrap();
            let frame_of = |seed: usize| {
                let data = (0..info.size()).map(|i| ((i * 7919 + seed) % 251) as u8);
                gst::Buffer::from_mut_slice(data.collect::<Vec<u8>>())
            };
            // A first frame fills the converter's row cache, which must not leak into the next.
            let (first, buf) = (frame_of(1), frame_of(2));
            let mut out = vec![0u8; conv.byte_size()];
            for b in [&first, &buf] {
                let frame = VideoFrameRef::from_buffer_ref_readable(b.as_ref(), &info).unwrap();
                conv.convert(&frame, &mut out).unwrap();
            }
            let frame = VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), &info).unwrap();
            let (xs, ys) = (taps(fw, 416), taps(fh, 416));
            let (cxs, cys) = (taps(fw.div_ceil(2), 416), taps(fh.div_ceil(2), 416));
            let (nw, nh) = (416, 416);
            for dy in 0..nh {
                for dx in 0..nw {
                    let want = match packed_layout(format) {
                        Some((bpp, rgb)) => rgb.map(|o| {
                            let x = scaled(&xs[dx..=dx], bpp as u32, o as u32)[0];
                            let stride = info.stride()[0] as usize;
                            reference_sample(frame.plane_data(0).unwrap(), stride, &x, &ys[dy])
                        }),
                        None => {
                            let yuv: [u8; 3] = std::array::from_fn(|c| {
                                let (x, y) = if c == 0 {
                                    (xs[dx], ys[dy])
                                } else {
                                    let ps = info.comp_pstride(c as u8) as u32;
                                    (scaled(&cxs[dx..=dx], ps, 0)[0], cys[dy])
                                };
                                let stride = info.comp_stride(c as u8) as usize;
                                reference_sample(frame.comp_data(c as u32).unwrap(), stride, &x, &y)
                            });
                            YuvToRgb::new(&info).rgb(yuv[0], yuv[1], yuv[2])
                        }
                    };
                    let got: [u8; 3] = std::array::from_fn(|k| out[k * nw * nh + dy * nw + dx]);
                    assert_eq!(want, got, "{format:?} {fw}x{fh} at ({dx}, {dy})");
                }
            }
        }
    }

    #[test]
    fn rejects_bad_sizes_and_formats() {
        gst::init().unwrap();
        let info = VideoInfo::builder(VideoFormat::Gray8, 8, 8)
            .build()
            .unwrap();
        assert!(Converter::new(&TensorSpec::yolox(8, 8), &info).is_err());
        let info = VideoInfo::builder(VideoFormat::Rgb, 20000, 8)
            .build()
            .unwrap();
        let e = Converter::new(&TensorSpec::yolox(8, 8), &info)
            .err()
            .unwrap();
        assert_eq!(e, ConvertError::FrameSize(20000, 8));
        assert!(
            e.is_negotiation() && e.to_string().contains("20000x8"),
            "{e}"
        );
    }
}
