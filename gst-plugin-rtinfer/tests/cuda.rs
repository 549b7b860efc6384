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

/// A darknet photo as one frame of `format`.
fn photo_frame(image: &str, format: gst_video::VideoFormat) -> (gst::Buffer, gst_video::VideoInfo) {
    use gst::prelude::*;
    let line = format!(
        "filesrc location={DARKNET}/{image}.jpg ! jpegdec ! videoconvert \
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

/// A photo through the CPU converter and through the CUDA kernel.
fn compare_with_cpu(device: &cuda::Device, format: gst_video::VideoFormat, spec: &TensorSpec) {
    let (buffer, info) = photo_frame("dog", format);
    let mut cpu_bytes = vec![0u8; spec.elements() * 4];
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(&buffer, &info).unwrap();
    Converter::new(spec, &info)
        .unwrap()
        .convert(&frame, &mut cpu_bytes)
        .unwrap();
    let cpu: &[f32] = gstrtinfer::convert::cast(&cpu_bytes).unwrap();

    let p = kernel::Params::new(&info, spec).unwrap();
    let mut pre = kernel::Preprocessor::new(device).unwrap();
    let stream = device.ctx.default_stream();
    let mut out = stream.alloc_zeros::<u8>(p.output_bytes()).unwrap();
    pre.run(&buffer.map_readable().unwrap(), &p, &mut out)
        .unwrap();
    let gpu_bytes = stream.clone_dtoh(&out).unwrap();
    let gpu: &[f32] = gstrtinfer::convert::cast(&gpu_bytes).unwrap();
    // One 8-bit step (fixed point on the CPU, floats on the GPU), in normalised units.
    let step = spec.scale / spec.std.iter().cloned().fold(f32::INFINITY, f32::min) * 1.01;
    let worst = cpu
        .iter()
        .zip(gpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= step,
        "{format:?}: largest difference {worst} > {step}"
    );
}

#[test]
fn cuda_preprocessing_matches_the_cpu() {
    let Ok(device) = cuda::Device::open(0) else {
        require("gpu", false);
        return;
    };
    init();
    use gst_video::VideoFormat::*;
    for spec in [
        TensorSpec::yolox(416, 416),
        TensorSpec::ultralytics(640, 640),
    ] {
        for format in [Rgb, Bgr, Rgba, Bgra, Nv12, I420] {
            compare_with_cpu(&device, format, &spec);
        }
    }
}
