//! rtpreprocess on CUDA: one NVRTC-compiled kernel does colour conversion (NV12, I420,
//! RGB/BGR, RGBA/BGRA), bilinear letterbox resize, padding, normalisation, layout and
//! FP32/FP16/U8 output in a single pass, one thread per tensor pixel.
//!
//! It follows the CPU converter (`convert.rs`): OpenCV INTER_LINEAR source coordinates,
//! each 8-bit component resized in its own plane and rounded to 8 bits (YUV: Y, U and V,
//! chroma at half size, then converted to RGB once), then `(v * scale - mean) / std`. The CPU
//! uses fixed point, the kernel floats, so values may differ by one 8-bit step.
//!
//! `SOURCE` also builds as host C++ (`tests/cuda.rs` runs it over the launch's grid with
//! blocks and threads as loops and compares it with the CPU converter), so its arithmetic is
//! checked in CI without a GPU; only `to_half` has a host variant of its own.

use super::{CudaError, Device};
use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use std::sync::Arc;

pub const SOURCE: &str = r#"
struct Params {
    int format;            // 0 packed RGB-like, 1 NV12/NV21, 2 I420/YV12
    int bpp;               // packed: bytes per pixel
    int r, g, b;           // packed: byte offsets of R, G, B; NV12: 0 = UV order, 1 = VU
    int src_w, src_h;
    int stride0, stride1, stride2;
    long long off1, off2;  // byte offsets of planes 1 and 2
    float y_off, y_mul, c_mul, r_v, g_u, g_v, b_u;
    int out_w, out_h;      // tensor size
    int new_w, new_h;      // resized image inside it
    int left, top;         // its position
    int pad;               // 8-bit pad value
    int bgr;               // 1: channels B, G, R
    int nchw;              // 1: planar, 0: interleaved
    int dtype;             // 0 f32, 1 f16, 2 u8
    float scale;
    float mean[3], stdinv[3];
};

// float to IEEE half, round to nearest even (no cuda_fp16.h: NVRTC from PyPI has no headers).
__device__ __forceinline__ unsigned short to_half(float f) {
#ifdef __CUDACC_RTC__
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#else
    // Host builds (the grid emulation test): the same rounding in integer arithmetic.
    unsigned int x;
    memcpy(&x, &f, 4);
    unsigned int sign = (x >> 16) & 0x8000, mant = x & 0x7fffff;
    int exp = (int)((x >> 23) & 0xff);
    if (exp == 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
    int e = exp - 112;  // rebiased for half
    if (e >= 0x1f) return sign | 0x7c00;
    int shift = 13;
    unsigned int h;
    if (e <= 0) {  // subnormal half
        if (e < -10) return sign;
        mant |= 0x800000;
        shift = 14 - e;
        h = mant >> shift;
    } else {
        h = ((unsigned int)e << 10) | (mant >> 13);
    }
    unsigned int rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;  // a carry rounds into the exponent
    return sign | h;
#endif
}

__device__ __forceinline__ unsigned char clamp8(float v) {
    return (unsigned char)fminf(fmaxf(v, 0.0f), 255.0f);
}

// OpenCV INTER_LINEAR: destination sample d of dst onto src, pixel centres aligned, clamped
// at the borders, with 11-bit weights. The same arithmetic as the CPU's `taps` (the
// coordinate in double, then float), so both read the same pixels with the same weights.
struct Tap { int i0, i1, w0, w1; };

__device__ Tap tap(int d, int src, int dst) {
    double scale = 1.0 / ((double)dst / src);
    float f = (float)((d + 0.5) * scale - 0.5);
    int i = (int)floorf(f);
    f -= (float)i;
    if (i < 0) { i = 0; f = 0.0f; }
    if (i >= src - 1) { i = src - 1; f = 0.0f; }
    Tap t;
    t.i0 = i;
    t.i1 = min(i + 1, src - 1);
    t.w0 = (int)roundf((1.0f - f) * 2048.0f);
    t.w1 = (int)roundf(f * 2048.0f);
    return t;
}

// One 8-bit component (`step` bytes apart in a row) resized as OpenCV's fixed-point bilinear
// does: the horizontal pass in 11-bit weights, then the vertical one rounded to 8 bits.
__device__ float lerp2(const unsigned char* s, int stride, int step, Tap tx, Tap ty) {
    const unsigned char* r0 = s + (long long)ty.i0 * stride;
    const unsigned char* r1 = s + (long long)ty.i1 * stride;
    int h0 = r0[tx.i0 * step] * tx.w0 + r0[tx.i1 * step] * tx.w1;
    int h1 = r1[tx.i0 * step] * tx.w0 + r1[tx.i1 * step] * tx.w1;
    int v = (((ty.w0 * (h0 >> 4)) >> 16) + ((ty.w1 * (h1 >> 4)) >> 16) + 2) >> 2;
    return (float)min(max(v, 0), 255);
}

extern "C" __global__ void rt_preprocess(const unsigned char* src, void* dst, Params p) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= p.out_w || y >= p.out_h) return;
    float out[3];
    int ix = x - p.left, iy = y - p.top;
    if (ix < 0 || iy < 0 || ix >= p.new_w || iy >= p.new_h) {
        out[0] = out[1] = out[2] = (float)p.pad;
    } else {
        Tap tx = tap(ix, p.src_w, p.new_w), ty = tap(iy, p.src_h, p.new_h);
        if (p.format == 0) {
            // Packed RGB: each component resized.
            const int off[3] = {p.r, p.g, p.b};
            for (int k = 0; k < 3; k++)
                out[k] = lerp2(src + off[k], p.stride0, p.bpp, tx, ty);
        } else {
            // YUV 4:2:0: Y, U and V each resized in its own plane (chroma at half size, rounded
            // up), then converted to RGB once.
            Tap cx = tap(ix, (p.src_w + 1) / 2, p.new_w), cy = tap(iy, (p.src_h + 1) / 2, p.new_h);
            float Y = lerp2(src, p.stride0, 1, tx, ty);
            float U, V;
            if (p.format == 1) {
                const unsigned char* uv = src + p.off1;
                U = lerp2(uv + p.r, p.stride1, 2, cx, cy);
                V = lerp2(uv + 1 - p.r, p.stride1, 2, cx, cy);
            } else {
                U = lerp2(src + p.off1, p.stride1, 1, cx, cy);
                V = lerp2(src + p.off2, p.stride2, 1, cx, cy);
            }
            float l = (Y - p.y_off) * p.y_mul + 0.5f;
            float u = (U - 128.0f) * p.c_mul, v = (V - 128.0f) * p.c_mul;
            out[0] = floorf(fminf(fmaxf(l + p.r_v * v, 0.0f), 255.0f));
            out[1] = floorf(fminf(fmaxf(l + p.g_u * u + p.g_v * v, 0.0f), 255.0f));
            out[2] = floorf(fminf(fmaxf(l + p.b_u * u, 0.0f), 255.0f));
        }
    }
    long long plane = (long long)p.out_w * p.out_h;
    long long pixel = (long long)y * p.out_w + x;
    for (int k = 0; k < 3; k++) {
        int ch = p.bgr ? 2 - k : k;   // tensor channel k holds colour out[ch]
        float v = (out[ch] * p.scale - p.mean[k]) * p.stdinv[k];
        long long i = p.nchw ? k * plane + pixel : pixel * 3 + k;
        if (p.dtype == 0) ((float*)dst)[i] = v;
        else if (p.dtype == 1) ((unsigned short*)dst)[i] = to_half(v);
        else ((unsigned char*)dst)[i] = clamp8(rintf(v));
    }
}
"#;

/// The kernel's parameter block; the layout matches `struct Params` above.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Params {
    pub format: i32,
    pub bpp: i32,
    pub r: i32,
    pub g: i32,
    pub b: i32,
    pub src_w: i32,
    pub src_h: i32,
    pub stride0: i32,
    pub stride1: i32,
    pub stride2: i32,
    pub off1: i64,
    pub off2: i64,
    pub y_off: f32,
    pub y_mul: f32,
    pub c_mul: f32,
    pub r_v: f32,
    pub g_u: f32,
    pub g_v: f32,
    pub b_u: f32,
    pub out_w: i32,
    pub out_h: i32,
    pub new_w: i32,
    pub new_h: i32,
    pub left: i32,
    pub top: i32,
    pub pad: i32,
    pub bgr: i32,
    pub nchw: i32,
    pub dtype: i32,
    pub scale: f32,
    pub mean: [f32; 3],
    pub stdinv: [f32; 3],
}

// SAFETY: plain old data with the C layout the kernel declares.
unsafe impl DeviceRepr for Params {}

/// The kernel as PTX, compiled once per process (NVRTC takes a noticeable fraction of a
/// second, and every stream's rtpreprocess needs the same PTX).
pub fn ptx() -> Result<Ptx, CudaError> {
    static PTX: std::sync::OnceLock<Result<Ptx, CudaError>> = std::sync::OnceLock::new();
    PTX.get_or_init(compile).clone()
}

/// Compiles the kernel to PTX with NVRTC (no GPU needed for this step).
pub fn compile() -> Result<Ptx, CudaError> {
    if !super::nvrtc_present() {
        return Err(CudaError::NoNvrtc);
    }
    super::guarded(|| {
        let opts = cudarc::nvrtc::CompileOptions {
            name: Some("rt_preprocess.cu".into()),
            ..Default::default()
        };
        cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
            .map_err(|e| CudaError::Compile(format!("{e:?}")))
    })
}

/// The compiled kernel on one device, with the frame's upload buffer.
pub struct Preprocessor {
    stream: Arc<CudaStream>,
    func: CudaFunction,
    upload: Option<CudaSlice<u8>>,
}

impl Preprocessor {
    pub fn new(device: &Device) -> Result<Self, CudaError> {
        let ptx = ptx()?;
        super::guarded(|| {
            let module = device
                .ctx
                .load_module(ptx)
                .map_err(CudaError::driver(format!(
                    "loading the kernel on {device:?}"
                )))?;
            let func = module
                .load_function("rt_preprocess")
                .map_err(CudaError::driver("rt_preprocess"))?;
            Ok(Preprocessor {
                stream: device.ctx.default_stream(),
                func,
                upload: None,
            })
        })
    }

    /// Uploads a system-memory frame (once) and writes the tensor into `out`.
    pub fn run(
        &mut self,
        frame: &[u8],
        p: &Params,
        out: &mut CudaSlice<u8>,
    ) -> Result<(), CudaError> {
        let upload = match &mut self.upload {
            Some(u) if u.len() == frame.len() => u,
            slot => slot.insert(
                self.stream
                    .alloc_zeros::<u8>(frame.len())
                    .map_err(CudaError::driver("allocating the frame's upload buffer"))?,
            ),
        };
        self.stream
            .memcpy_htod(frame, upload)
            .map_err(CudaError::driver("uploading the frame"))?;
        let cfg = LaunchConfig {
            grid_dim: (
                (p.out_w as u32).div_ceil(16),
                (p.out_h as u32).div_ceil(16),
                1,
            ),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        let mut args = self.stream.launch_builder(&self.func);
        args.arg(&*upload).arg(out).arg(p);
        // SAFETY: the arguments match the kernel's signature; the kernel writes only inside
        // `out`, which the caller sized with `Params::output_bytes`.
        unsafe { args.launch(cfg) }
            .map(|_| ())
            .map_err(CudaError::driver("rt_preprocess launch"))
    }

    /// Copies a tensor back to host memory (waits for the kernel).
    pub fn download(&self, tensor: &CudaSlice<u8>, out: &mut [u8]) -> Result<(), CudaError> {
        self.stream
            .memcpy_dtoh(tensor, out)
            .and_then(|()| self.stream.synchronize())
            .map_err(CudaError::driver("downloading the tensor"))
    }
}

impl Params {
    /// The parameters for frames of `info` into tensors of `spec`.
    pub fn new(
        info: &gst_video::VideoInfo,
        spec: &crate::spec::TensorSpec,
    ) -> Result<Self, CudaError> {
        use gst_video::VideoFormat::*;
        let format = info.format();
        let mut p = Params {
            src_w: info.width() as i32,
            src_h: info.height() as i32,
            stride0: info.stride()[0],
            ..Default::default()
        };
        if let Some((bpp, [r, g, b])) = crate::convert::packed_layout(format) {
            (p.format, p.bpp, p.r, p.g, p.b) = (0, bpp as i32, r as i32, g as i32, b as i32);
        } else {
            let k = crate::convert::YuvCoefficients::new(info);
            (p.y_off, p.y_mul, p.c_mul) = (k.y_off as f32, k.y_mul as f32, k.c_mul as f32);
            (p.r_v, p.g_u, p.g_v, p.b_u) = (k.r_v as f32, k.g_u as f32, k.g_v as f32, k.b_u as f32);
            let (strides, offsets) = (info.stride(), info.offset());
            match format {
                Nv12 | Nv21 => {
                    (p.format, p.r) = (1, (format == Nv21) as i32);
                    (p.stride1, p.off1) = (strides[1], offsets[1] as i64);
                }
                I420 | Yv12 => {
                    // YV12 stores V before U.
                    let (u, v) = if format == Yv12 { (2, 1) } else { (1, 2) };
                    p.format = 2;
                    (p.stride1, p.off1) = (strides[u], offsets[u] as i64);
                    (p.stride2, p.off2) = (strides[v], offsets[v] as i64);
                }
                other => return Err(CudaError::Format(other)),
            }
        }
        let g = crate::letterbox::geometry(
            info.width(),
            info.height(),
            spec.width,
            spec.height,
            spec.fit,
        );
        (p.out_w, p.out_h) = (spec.width as i32, spec.height as i32);
        (p.new_w, p.new_h, p.left, p.top) =
            (g.new_w as i32, g.new_h as i32, g.left as i32, g.top as i32);
        p.pad = spec.pad as i32;
        p.bgr = (spec.order == rtmeta::ChannelOrder::Bgr) as i32;
        p.nchw = (spec.layout == rtmeta::Layout::Nchw) as i32;
        p.dtype = match spec.dtype {
            rtmeta::DType::F32 => 0,
            rtmeta::DType::F16 => 1,
            rtmeta::DType::U8 => 2,
        };
        p.scale = spec.scale;
        p.mean = spec.mean;
        p.stdinv = spec.std.map(|s| 1.0 / s);
        Ok(p)
    }

    /// Bytes of the tensor the kernel writes.
    pub fn output_bytes(&self) -> usize {
        let elem = [4, 2, 1][self.dtype as usize];
        self.out_w as usize * self.out_h as usize * 3 * elem
    }
}
