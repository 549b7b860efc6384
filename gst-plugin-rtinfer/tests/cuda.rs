//! The CUDA path. The kernel is compiled with NVRTC wherever NVRTC loads (no GPU needed:
//! PyPI's nvidia-cuda-nvrtc, which scripts/test.sh installs and requires with
//! RT_REQUIRE_NVRTC=1). Running it needs an NVIDIA GPU; without one those tests skip.

mod common;
use common::*;
use gstrtinfer::convert::Converter;
use gstrtinfer::cuda::{self, kernel};
use gstrtinfer::spec::TensorSpec;

fn require(what: &str, present: bool) -> bool {
    if !present {
        let var = format!("RT_REQUIRE_{}", what.to_uppercase());
        assert!(
            std::env::var_os(&var).is_none(),
            "{var} is set but {what} is missing"
        );
        eprintln!("skipped: no {what} on this host");
    }
    present
}

#[test]
fn the_preprocessing_kernel_compiles_with_nvrtc() {
    if !require("nvrtc", cuda::nvrtc_present()) {
        return;
    }
    let ptx = kernel::compile().unwrap();
    let text = ptx.to_src();
    assert!(
        text.contains(".entry rt_preprocess"),
        "{}",
        &text[..text.len().min(500)]
    );
}

/// A darknet photo as one frame of `format`, scaled to `size` when given.
fn photo_frame(
    image: &str,
    format: gst_video::VideoFormat,
    size: Option<(u32, u32)>,
) -> (gst::Buffer, gst_video::VideoInfo) {
    use gst::prelude::*;
    let scale = size.map_or(String::new(), |(w, h)| {
        format!("videoscale ! video/x-raw,width={w},height={h} ! ")
    });
    let line = format!(
        "filesrc location={DARKNET}/{image}.jpg ! jpegdec ! {scale}videoconvert \
         ! video/x-raw,format={} ! appsink name=out",
        format.to_str()
    );
    let pipeline = launch_pipeline(&line);
    let sink = appsink(&pipeline, "out");
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.pull_sample().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    (sample.buffer_owned().unwrap(), info)
}

/// A tensor's elements as f32, whatever its element type.
fn values(bytes: &[u8], dtype: rtmeta::DType) -> Vec<f32> {
    use gstrtinfer::convert::cast;
    match dtype {
        rtmeta::DType::F32 => cast::<f32>(bytes).unwrap().to_vec(),
        rtmeta::DType::F16 => cast::<half::f16>(bytes)
            .unwrap()
            .iter()
            .map(|h| h.to_f32())
            .collect(),
        rtmeta::DType::U8 => bytes.iter().map(|&b| b as f32).collect(),
    }
}

/// A photo through the CPU converter and through the kernel (`run`: its output bytes for
/// the frame and the parameters).
fn compare_with_cpu(
    format: gst_video::VideoFormat,
    size: Option<(u32, u32)>,
    spec: &TensorSpec,
    run: &mut dyn FnMut(&[u8], &kernel::Params) -> Vec<u8>,
) {
    use gst_video::VideoFormat::*;
    let (buffer, info) = photo_frame("dog", format, size);
    let mut cpu_bytes = vec![0u8; spec.elements() * spec.dtype.size()];
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(&buffer, &info).unwrap();
    Converter::new(spec, &info)
        .unwrap()
        .convert(&frame, &mut cpu_bytes)
        .unwrap();
    let p = kernel::Params::new(&info, spec).unwrap();
    let kernel_bytes = run(&buffer.map_readable().unwrap(), &p);
    assert_eq!(kernel_bytes.len(), cpu_bytes.len());
    let (cpu, out) = (
        values(&cpu_bytes, spec.dtype),
        values(&kernel_bytes, spec.dtype),
    );
    // The resize is the CPU's fixed-point arithmetic, so the 8-bit values agree exactly; the
    // normalisation (a table on the CPU, `* 1/std` in the kernel) may differ in the last bit
    // of an f32, and so by one f16 step. YUV to RGB is tables on the CPU and floats in the
    // kernel: one 8-bit step where a value falls within rounding of an integer.
    let step = match format {
        Nv12 | Nv21 | I420 | Yv12 => {
            spec.scale / spec.std.iter().cloned().fold(f32::INFINITY, f32::min) * 1.01
        }
        _ => 0.0,
    };
    let (i, worst, allowed) = cpu
        .iter()
        .zip(&out)
        .enumerate()
        .map(|(i, (a, b))| {
            let allowed = step
                + match spec.dtype {
                    rtmeta::DType::F32 => a.abs().max(1.0) * 1e-6,
                    rtmeta::DType::F16 => a.abs().max(1.0) / 1024.0,
                    rtmeta::DType::U8 => 0.0,
                };
            (i, (a - b).abs(), allowed)
        })
        .max_by(|a, b| (a.1 - a.2).total_cmp(&(b.1 - b.2)))
        .unwrap();
    assert!(
        worst <= allowed,
        "{format:?} {size:?} {spec:?}: element {i}: CPU {} kernel {} (allowed {allowed})",
        cpu[i],
        out[i]
    );
}

#[test]
fn cuda_preprocessing_matches_the_cpu() {
    let Ok(device) = cuda::Device::open(0) else {
        require("gpu", false);
        return;
    };
    init();
    let mut pre = kernel::Preprocessor::new(&device).unwrap();
    let stream = device.ctx.default_stream();
    let mut on_gpu = |frame: &[u8], p: &kernel::Params| {
        let mut out = stream.alloc_zeros::<u8>(p.output_bytes()).unwrap();
        pre.run(frame, p, &mut out).unwrap();
        stream.clone_dtoh(&out).unwrap()
    };
    for (format, size, spec) in cases() {
        compare_with_cpu(format, size, &spec, &mut on_gpu);
    }
}

/// Every format the kernel reads, each spec variant (fits, orders, layouts, element types,
/// normalisations) and odd frame sizes for the subsampled chroma.
/// A frame format, a size to scale the photo to (its own when None) and a tensor spec.
type Case = (gst_video::VideoFormat, Option<(u32, u32)>, TensorSpec);

fn cases() -> Vec<Case> {
    use gst_video::VideoFormat::*;
    use gstrtinfer::spec::Fit;
    let imagenet = TensorSpec {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        ..TensorSpec::ultralytics(224, 224)
    };
    let specs = [
        TensorSpec::yolox(416, 416),
        TensorSpec::ultralytics(640, 640),
        TensorSpec {
            dtype: rtmeta::DType::F16,
            layout: rtmeta::Layout::Nhwc,
            ..TensorSpec::ultralytics(320, 256)
        },
        TensorSpec {
            dtype: rtmeta::DType::U8,
            fit: Fit::Stretch,
            ..TensorSpec::yolox(300, 200)
        },
        imagenet,
    ];
    let mut cases = Vec::new();
    for spec in &specs {
        for format in [Rgb, Bgr, Rgba, Bgra, Rgbx, Bgrx, Nv12, Nv21, I420, Yv12] {
            cases.push((format, None, spec.clone()));
        }
    }
    for format in [Nv12, I420, Yv12] {
        cases.push((format, Some((331, 247)), TensorSpec::yolox(416, 416)));
    }
    cases
}

/// The kernel source built as host C++, with blocks and threads as loops over the grid the
/// launch uses (16x16 blocks): its arithmetic checked without a GPU.
struct HostKernel {
    _lib: libloading::Library,
    run: unsafe extern "C" fn(*const u8, *mut u8, kernel::Params),
}

const HOST_PRELUDE: &str = r#"
#include <math.h>
#include <string.h>
#include <algorithm>
#define __device__
#define __forceinline__ inline
#define __global__
struct Dim3 { int x, y, z; };
static Dim3 blockIdx, blockDim, threadIdx;
using std::max;
using std::min;
"#;

const HOST_GRID: &str = r#"
extern "C" void rt_preprocess_grid(const unsigned char* src, void* dst, Params p) {
    blockDim = {16, 16, 1};
    for (int by = 0; by < (p.out_h + 15) / 16; by++)
        for (int bx = 0; bx < (p.out_w + 15) / 16; bx++)
            for (int ty = 0; ty < 16; ty++)
                for (int tx = 0; tx < 16; tx++) {
                    blockIdx = {bx, by, 0};
                    threadIdx = {tx, ty, 0};
                    rt_preprocess(src, dst, p);
                }
}
"#;

impl HostKernel {
    /// Compiles it with g++; None when there is no g++.
    fn build() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("rt-kernel-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (src, lib) = (dir.join("kernel.cpp"), dir.join("libkernel.so"));
        std::fs::write(&src, format!("{HOST_PRELUDE}{}{HOST_GRID}", kernel::SOURCE)).unwrap();
        let built = std::process::Command::new("g++")
            .args(["-O2", "-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&src)
            .output()
            .ok()?;
        assert!(
            built.status.success(),
            "the kernel does not build as C++:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        // SAFETY: the library was just built from the kernel source and the grid above; the
        // symbol has the signature declared in `run`.
        unsafe {
            let lib = libloading::Library::new(&lib).unwrap();
            let run = *lib
                .get::<unsafe extern "C" fn(*const u8, *mut u8, kernel::Params)>(
                    b"rt_preprocess_grid",
                )
                .unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            Some(HostKernel { _lib: lib, run })
        }
    }
}

#[test]
fn the_kernel_source_run_on_the_cpu_over_its_grid_matches_the_cpu_converter() {
    let Some(host) = HostKernel::build() else {
        require("cxx", false);
        return;
    };
    init();
    let mut on_host = |frame: &[u8], p: &kernel::Params| {
        let mut out = vec![0u8; p.output_bytes()];
        // SAFETY: `out` has the bytes the kernel writes for `p`, and `frame` is the frame
        // `p` describes (Params::new from its VideoInfo).
        unsafe { (host.run)(frame.as_ptr(), out.as_mut_ptr(), *p) };
        out
    };
    for (format, size, spec) in cases() {
        compare_with_cpu(format, size, &spec, &mut on_host);
    }
}
