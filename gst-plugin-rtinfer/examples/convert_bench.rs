//! Time of one frame-to-tensor conversion, per input format (best of 10 rounds).
//!   cargo run --release --example convert_bench
use gst_video::{VideoFormat, VideoFrameRef, VideoInfo};
use gstrtinfer::convert::Converter;
use gstrtinfer::spec::TensorSpec;
use std::time::Instant;

fn main() {
    gst::init().unwrap();
    for (format, spec) in [
        (VideoFormat::I420, TensorSpec::yolox(416, 416)),
        (VideoFormat::Nv12, TensorSpec::yolox(416, 416)),
        (VideoFormat::Rgb, TensorSpec::yolox(416, 416)),
        (VideoFormat::Bgrx, TensorSpec::ultralytics(640, 640)),
    ] {
        let info = VideoInfo::builder(format, 768, 576).build().unwrap();
        let buf = gst::Buffer::from_mut_slice(
            (0..info.size())
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<u8>>(),
        );
        let mut conv = Converter::new(&spec, &info).unwrap();
        let mut out = vec![0f32; conv.byte_size() / 4 + 1];
        let frame = VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), &info).unwrap();
        let n: usize = std::env::var("N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        // The best of 10 rounds, as a shared machine's other work only ever adds time.
        let ms = (0..10)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..n / 10 {
                    let bytes =
                        &mut gstrtinfer::convert::as_bytes_mut(&mut out)[..conv.byte_size()];
                    conv.convert(&frame, bytes).unwrap();
                }
                start.elapsed().as_secs_f64() * 1000.0 / (n / 10) as f64
            })
            .fold(f64::INFINITY, f64::min);
        println!("{format:?} 768x576 -> {}: {ms:.3} ms", spec.describe());
    }
}
