//! AVX2 versions of the converter's inner loops, chosen at run time (the build targets
//! baseline x86-64). Each gives the same bits as its portable version in `convert.rs`:
//! integer arithmetic throughout, and the normalisation's float operations in the same
//! order. The tests below compare them on every tail length.

use super::{Norm, Tap, YuvToRgb};
use std::arch::x86_64::*;

/// Whether this CPU runs the functions below.
pub fn available() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// One channel's horizontal taps as parallel arrays, with the two weights packed into one
/// 32-bit lane (`w0 | w1 << 16`) for `vpmaddwd`.
#[derive(Clone, Debug, Default)]
pub struct Taps {
    i0: Vec<i32>,
    i1: Vec<i32>,
    w: Vec<i32>,
    /// Per block of eight taps, when each half's samples lie within 16 bytes: where the
    /// halves start and the byte shuffle that makes their (i0, i1) pairs. Gathers are slow
    /// (on AMD Zen 4 above all); two loads and a shuffle are not.
    blocks: Vec<Option<Block>>,
}

#[derive(Clone, Debug)]
struct Block {
    /// The first byte of each 16-byte window (low half, high half).
    base: [u32; 2],
    /// Per 32-bit lane: the bytes at i0 and i1 relative to the window, zero-extended.
    mask: [u8; 32],
}

impl Block {
    fn new(taps: &[Tap]) -> Option<Self> {
        let mut block = Block {
            base: [0; 2],
            mask: [0x80; 32],
        };
        for (half, taps) in taps.chunks(4).enumerate() {
            let base = taps.iter().map(|t| t.i0.min(t.i1)).min()?;
            block.base[half] = base;
            for (j, t) in taps.iter().enumerate() {
                let (a, b) = (t.i0 - base, t.i1 - base);
                if a > 15 || b > 15 {
                    return None;
                }
                block.mask[16 * half + 4 * j] = a as u8;
                block.mask[16 * half + 4 * j + 2] = b as u8;
            }
        }
        Some(block)
    }
}

impl Taps {
    pub fn new(taps: &[Tap]) -> Self {
        Taps {
            i0: taps.iter().map(|t| t.i0 as i32).collect(),
            i1: taps.iter().map(|t| t.i1 as i32).collect(),
            // Weights are at most 2048, so each fits a 16-bit half.
            w: taps.iter().map(|t| t.w0 | (t.w1 << 16)).collect(),
            blocks: taps.chunks_exact(8).map(Block::new).collect(),
        }
    }
}

/// [`super::hpass`], eight taps at a time: each half's samples loaded as 16 bytes and
/// shuffled into (i0, i1) pairs where they lie that close (and the row has the 16 bytes),
/// else two gathers (4 bytes at each offset, of which the first is the sample); then one
/// multiply-add.
///
/// # Safety
/// AVX2 is available, `t` has `out.len()` taps, and `src` has at least 4 bytes from every
/// offset (the gathers read whole 32-bit words).
#[target_feature(enable = "avx2")]
pub unsafe fn hpass(src: &[u8], t: &Taps, xs: &[Tap], out: &mut [i16]) {
    let n = out.len();
    let byte = _mm256_set1_epi32(0xff);
    let base = src.as_ptr() as *const i32;
    let mut k = 0;
    while k + 8 <= n {
        // SAFETY: k + 8 <= n taps; a window is read only when its 16 bytes are within src;
        // the caller bounds every gathered offset + 4 within src.
        unsafe {
            let pairs = match &t.blocks[k / 8] {
                Some(b) if b.base[0].max(b.base[1]) as usize + 16 <= src.len() => {
                    let v = _mm256_loadu2_m128i(
                        src.as_ptr().add(b.base[1] as usize) as *const __m128i,
                        src.as_ptr().add(b.base[0] as usize) as *const __m128i,
                    );
                    _mm256_shuffle_epi8(v, _mm256_loadu_si256(b.mask.as_ptr() as *const __m256i))
                }
                _ => {
                    let i0 = _mm256_loadu_si256(t.i0.as_ptr().add(k) as *const __m256i);
                    let i1 = _mm256_loadu_si256(t.i1.as_ptr().add(k) as *const __m256i);
                    let p0 = _mm256_and_si256(_mm256_i32gather_epi32::<1>(base, i0), byte);
                    let p1 = _mm256_and_si256(_mm256_i32gather_epi32::<1>(base, i1), byte);
                    _mm256_or_si256(p0, _mm256_slli_epi32::<16>(p1))
                }
            };
            let w = _mm256_loadu_si256(t.w.as_ptr().add(k) as *const __m256i);
            let h = _mm256_srai_epi32::<4>(_mm256_madd_epi16(pairs, w));
            // h <= 255 * 2048 >> 4 fits i16, so the saturating pack is exact.
            let packed =
                _mm_packs_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            _mm_storeu_si128(out.as_mut_ptr().add(k) as *mut __m128i, packed);
        }
        k += 8;
    }
    // SAFETY: the caller's bound covers the portable version's reads too.
    unsafe { super::hpass(src, &xs[k..], &mut out[k..]) };
}

/// [`super::vmix`] over a row, sixteen samples at a time.
///
/// # Safety
/// AVX2 is available.
#[target_feature(enable = "avx2")]
pub unsafe fn vpass(h0: &[i16], h1: &[i16], b0: i16, b1: i16, out: &mut [u8]) {
    let n = out.len().min(h0.len()).min(h1.len());
    let (w0, w1, two) = (
        _mm256_set1_epi16(b0),
        _mm256_set1_epi16(b1),
        _mm256_set1_epi16(2),
    );
    let mut k = 0;
    while k + 16 <= n {
        // SAFETY: k + 16 <= n elements of each slice.
        unsafe {
            let a = _mm256_loadu_si256(h0.as_ptr().add(k) as *const __m256i);
            let b = _mm256_loadu_si256(h1.as_ptr().add(k) as *const __m256i);
            let s = _mm256_add_epi16(_mm256_mulhi_epi16(a, w0), _mm256_mulhi_epi16(b, w1));
            let s = _mm256_srai_epi16::<2>(_mm256_add_epi16(s, two));
            // The unsigned saturating pack is the clamp to 0..=255.
            let bytes =
                _mm_packus_epi16(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
            _mm_storeu_si128(out.as_mut_ptr().add(k) as *mut __m128i, bytes);
        }
        k += 16;
    }
    for ((o, a), b) in out[k..n].iter_mut().zip(&h0[k..n]).zip(&h1[k..n]) {
        *o = super::vmix(*a, *b, b0, b1);
    }
}

/// [`YuvToRgb::rgb`] over a row, eight pixels at a time: the same 32-bit products.
///
/// # Safety
/// AVX2 is available.
#[target_feature(enable = "avx2")]
pub unsafe fn yuv_to_rgb(c: &YuvToRgb, [y, u, v]: [&[u8]; 3], [r, g, b]: [&mut [u8]; 3]) {
    let n = y
        .len()
        .min(u.len())
        .min(v.len())
        .min(r.len())
        .min(g.len())
        .min(b.len());
    let set = _mm256_set1_epi32;
    let (y_off, half, mid) = (set(c.y_off), set(0x8000), set(128));
    let (y_mul, r_v, g_u, g_v, b_u) =
        (set(c.y_mul), set(c.r_v), set(c.g_u), set(c.g_v), set(c.b_u));
    let mut k = 0;
    while k + 8 <= n {
        // SAFETY: k + 8 <= n bytes of each row.
        unsafe {
            let load = |s: &[u8], off: __m256i| {
                let x = _mm256_cvtepu8_epi32(_mm_loadl_epi64(s.as_ptr().add(k) as *const __m128i));
                _mm256_sub_epi32(x, off)
            };
            let (yi, ui, vi) = (load(y, y_off), load(u, mid), load(v, mid));
            let mul = _mm256_mullo_epi32;
            let l = _mm256_add_epi32(mul(yi, y_mul), half);
            let rr = _mm256_add_epi32(l, mul(vi, r_v));
            let gg = _mm256_add_epi32(_mm256_add_epi32(l, mul(ui, g_u)), mul(vi, g_v));
            let bb = _mm256_add_epi32(l, mul(ui, b_u));
            // (x >> 16) is within i16 for every colour matrix, so the signed pack is
            // exact and the unsigned pack that follows is the clamp to 0..=255.
            let store = |x: __m256i, out: &mut [u8]| {
                let x = _mm256_srai_epi32::<16>(x);
                let w =
                    _mm_packs_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256::<1>(x));
                _mm_storel_epi64(
                    out.as_mut_ptr().add(k) as *mut __m128i,
                    _mm_packus_epi16(w, w),
                );
            };
            store(rr, r);
            store(gg, g);
            store(bb, b);
        }
        k += 8;
    }
    for x in k..n {
        [r[x], g[x], b[x]] = c.rgb(y[x], u[x], v[x]);
    }
}

/// [`Norm::value`] over a row, compiled for AVX2 (the same operations, eight lanes wide).
///
/// # Safety
/// AVX2 is available.
#[target_feature(enable = "avx2")]
pub unsafe fn normalise(src: &[u8], dst: &mut [f32], norm: Norm) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = norm.value(*s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: usize) -> Vec<u8> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 31 + i / 7) % 256) as u8)
            .collect()
    }

    #[test]
    fn every_path_gives_the_portable_bits() {
        if !available() {
            eprintln!("skipped: no AVX2 on this CPU");
            return;
        }
        for (src_w, dst_w, pstride, off) in [
            (768, 416, 1, 0),
            (384, 416, 2, 1),
            (333, 97, 3, 2),
            (64, 640, 4, 3),
            (5, 3, 1, 0),
            (1, 9, 1, 0),
        ] {
            let xs = super::super::scaled(&super::super::taps(src_w, dst_w), pstride, off);
            let t = Taps::new(&xs);
            // 4 bytes past the last offset (the last blocks gather), and 16 (all shuffle).
            for slack in [4, 16] {
                let src = bytes(src_w as usize * pstride as usize + slack, 1);
                let (mut a, mut b) = (vec![0i16; xs.len()], vec![0i16; xs.len()]);
                // SAFETY: the AVX2 check above; src has 4 bytes past the last offset.
                unsafe {
                    super::super::hpass(&src, &xs, &mut a);
                    hpass(&src, &t, &xs, &mut b);
                }
                assert_eq!(a, b, "hpass {src_w} -> {dst_w}, {slack} bytes after");
            }
        }
        // Luma 768 -> 416 shuffles every block; packed 4-byte pixels gather.
        let shuffled = |t: &Taps| t.blocks.iter().filter(|b| b.is_some()).count();
        let luma = Taps::new(&super::super::taps(768, 416));
        assert_eq!(shuffled(&luma), 52);
        let packed = Taps::new(&super::super::scaled(&super::super::taps(768, 416), 4, 0));
        assert_eq!(shuffled(&packed), 0);
        let h0: Vec<i16> = (0..37).map(|i| (i * 977 % 32641) as i16).collect();
        let h1: Vec<i16> = (0..37).map(|i| (i * 1237 % 32641) as i16).collect();
        for (b0, b1) in [(2048, 0), (1024, 1024), (3, 2045), (0, 2048)] {
            let want: Vec<u8> = h0
                .iter()
                .zip(&h1)
                .map(|(a, b)| super::super::vmix(*a, *b, b0, b1))
                .collect();
            let mut got = vec![0u8; 37];
            // SAFETY: the AVX2 check above.
            unsafe { vpass(&h0, &h1, b0, b1, &mut got) };
            assert_eq!(want, got, "vpass {b0} {b1}");
        }
        for caps in [
            "video/x-raw,format=I420,width=8,height=8,colorimetry=bt601",
            "video/x-raw,format=I420,width=8,height=8,colorimetry=bt709",
            "video/x-raw,format=I420,width=8,height=8,colorimetry=bt2020",
            "video/x-raw,format=I420,width=8,height=8,colorimetry=1:4:0:0",
        ] {
            gst::init().unwrap();
            let info =
                gst_video::VideoInfo::from_caps(&caps.parse::<gst::Caps>().unwrap()).unwrap();
            let c = YuvToRgb::new(&info);
            // Every (y, u, v) combination on a coarse grid, plus a tail of 3.
            let mut yuv = [Vec::new(), Vec::new(), Vec::new()];
            for y in (0..=255).step_by(5) {
                for u in (0..=255).step_by(15) {
                    for v in (0..=255).step_by(15) {
                        yuv[0].push(y as u8);
                        yuv[1].push(u as u8);
                        yuv[2].push(v as u8);
                    }
                }
            }
            let n = yuv[0].len() + 3;
            yuv.iter_mut().for_each(|p| p.extend([0, 255, 128]));
            let mut want = [vec![0u8; n], vec![0u8; n], vec![0u8; n]];
            for x in 0..n {
                let px = c.rgb(yuv[0][x], yuv[1][x], yuv[2][x]);
                (0..3).for_each(|k| want[k][x] = px[k]);
            }
            let mut got = [vec![0u8; n], vec![0u8; n], vec![0u8; n]];
            let [r, g, b] = &mut got;
            // SAFETY: the AVX2 check above.
            unsafe { yuv_to_rgb(&c, [&yuv[0], &yuv[1], &yuv[2]], [r, g, b]) };
            assert_eq!(want, got, "{caps}");
        }
        let src = bytes(256 + 5, 3);
        let norm = Norm {
            scale: 1.0 / 255.0,
            mean: 0.485,
            std: 0.229,
        };
        let want: Vec<u32> = src.iter().map(|s| norm.value(*s).to_bits()).collect();
        let mut got = vec![0f32; src.len()];
        // SAFETY: the AVX2 check above.
        unsafe { normalise(&src, &mut got, norm) };
        assert_eq!(want, got.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }
}
