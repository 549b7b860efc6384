//! rtpreprocess on CUDA: one NVRTC-compiled kernel does colour conversion (NV12, I420,
//! RGB/BGR, RGBA/BGRA), bilinear letterbox resize, padding, normalisation, layout and
//! FP32/FP16/U8 output in a single pass, one thread per tensor pixel.
//!
//! It follows the CPU converter (`convert.rs`): OpenCV INTER_LINEAR source coordinates,
//! each tap converted to 8-bit RGB first, the blend rounded to 8 bits, then `(v * scale -
//! mean) / std`. The CPU uses fixed point, the kernel floats, so values may differ by one
//! 8-bit step.

use super::Device;
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
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ unsigned char clamp8(float v) {
    return (unsigned char)fminf(fmaxf(v, 0.0f), 255.0f);
}

__device__ void tap(const unsigned char* s, const Params& p, int x, int y, float rgb[3]) {
    if (p.format == 0) {
        const unsigned char* px = s + (long long)y * p.stride0 + x * p.bpp;
        rgb[0] = px[p.r]; rgb[1] = px[p.g]; rgb[2] = px[p.b];
        return;
    }
    float Y = s[(long long)y * p.stride0 + x];
    float U, V;
    if (p.format == 1) {
        const unsigned char* uv = s + p.off1 + (long long)(y / 2) * p.stride1 + (x / 2) * 2;
        U = uv[p.r]; V = uv[1 - p.r];
    } else {
        U = s[p.off1 + (long long)(y / 2) * p.stride1 + x / 2];
        V = s[p.off2 + (long long)(y / 2) * p.stride2 + x / 2];
    }
    float l = (Y - p.y_off) * p.y_mul + 0.5f;
    float u = (U - 128.0f) * p.c_mul, v = (V - 128.0f) * p.c_mul;
    rgb[0] = floorf(fminf(fmaxf(l + p.r_v * v, 0.0f), 255.0f));
    rgb[1] = floorf(fminf(fmaxf(l + p.g_u * u + p.g_v * v, 0.0f), 255.0f));
    rgb[2] = floorf(fminf(fmaxf(l + p.b_u * u, 0.0f), 255.0f));
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
        // OpenCV INTER_LINEAR: pixel centres aligned, clamped at the borders.
        float fx = (ix + 0.5f) * ((float)p.src_w / p.new_w) - 0.5f;
        float fy = (iy + 0.5f) * ((float)p.src_h / p.new_h) - 0.5f;
        int x0 = (int)floorf(fx), y0 = (int)floorf(fy);
        float ax = fx - x0, ay = fy - y0;
        if (x0 < 0) { x0 = 0; ax = 0.0f; }
        if (y0 < 0) { y0 = 0; ay = 0.0f; }
        if (x0 >= p.src_w - 1) { x0 = p.src_w - 1; ax = 0.0f; }
        if (y0 >= p.src_h - 1) { y0 = p.src_h - 1; ay = 0.0f; }
        int x1 = min(x0 + 1, p.src_w - 1), y1 = min(y0 + 1, p.src_h - 1);
        float a[3], b[3], c[3], d[3];
        tap(src, p, x0, y0, a); tap(src, p, x1, y0, b);
        tap(src, p, x0, y1, c); tap(src, p, x1, y1, d);
        for (int k = 0; k < 3; k++) {
            float top = a[k] + (b[k] - a[k]) * ax, bot = c[k] + (d[k] - c[k]) * ax;
            out[k] = (float)clamp8(rintf(top + (bot - top) * ay));
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
pub fn ptx() -> Result<Ptx, String> {
    static PTX: std::sync::OnceLock<Result<Ptx, String>> = std::sync::OnceLock::new();
    PTX.get_or_init(compile).clone()
}

/// Compiles the kernel to PTX with NVRTC (no GPU needed for this step).
pub fn compile() -> Result<Ptx, String> {
    if !super::nvrtc_present() {
        return Err(
            "NVRTC (libnvrtc.so) was not found: install the CUDA toolkit or \
             `pip install nvidia-cuda-nvrtc` and add its lib folder to LD_LIBRARY_PATH"
                .into(),
        );
    }
    super::guarded(|| {
        let opts = cudarc::nvrtc::CompileOptions {
            name: Some("rt_preprocess.cu".into()),
            ..Default::default()
        };
        cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
            .map_err(|e| format!("the preprocessing kernel did not compile: {e:?}"))
    })
}

/// The compiled kernel on one device, with the frame's upload buffer.
pub struct Preprocessor {
    stream: Arc<CudaStream>,
    func: CudaFunction,
    upload: Option<CudaSlice<u8>>,
}

impl Preprocessor {
    pub fn new(device: &Device) -> Result<Self, String> {
        let ptx = ptx()?;
        super::guarded(|| {
            let module = device
                .ctx
                .load_module(ptx)
                .map_err(|e| format!("loading the kernel on {device:?}: {e}"))?;
            let func = module
                .load_function("rt_preprocess")
                .map_err(|e| format!("rt_preprocess: {e}"))?;
            Ok(Preprocessor {
                stream: device.ctx.default_stream(),
                func,
                upload: None,
            })
        })
    }

    /// Uploads a system-memory frame (once) and writes the tensor into `out`.
    pub fn run(&mut self, frame: &[u8], p: &Params, out: &mut CudaSlice<u8>) -> Result<(), String> {
        let upload = match &mut self.upload {
            Some(u) if u.len() == frame.len() => u,
            slot => slot.insert(
                self.stream
                    .alloc_zeros::<u8>(frame.len())
                    .map_err(|e| e.to_string())?,
            ),
        };
        self.stream
            .memcpy_htod(frame, upload)
            .map_err(|e| e.to_string())?;
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
            .map_err(|e| format!("rt_preprocess launch: {e}"))
    }

    /// Copies a tensor back to host memory (waits for the kernel).
    pub fn download(&self, tensor: &CudaSlice<u8>, out: &mut [u8]) -> Result<(), String> {
        self.stream
            .memcpy_dtoh(tensor, out)
            .and_then(|()| self.stream.synchronize())
            .map_err(|e| e.to_string())
    }
}

impl Params {
    /// The parameters for frames of `info` into tensors of `spec`.
    pub fn new(
        info: &gst_video::VideoInfo,
        spec: &crate::spec::TensorSpec,
    ) -> Result<Self, String> {
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
                other => return Err(format!("{other:?} frames are not supported on CUDA")),
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
