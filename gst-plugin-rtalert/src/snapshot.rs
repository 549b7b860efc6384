//! JPEG snapshots of the frames that raised alerts.

use gst_video::{VideoFormat, VideoFrameRef, VideoInfo};
use std::path::Path;

/// Writes `buffer` (a frame described by `info`) as a JPEG file.
pub fn write_jpeg(buffer: &gst::BufferRef, info: &VideoInfo, path: &Path) -> Result<(), String> {
    let (w, h) = (info.width(), info.height());
    if w > u16::MAX as u32 || h > u16::MAX as u32 {
        return Err(format!("{w}x{h} is too large for JPEG"));
    }
    let rgb_info = VideoInfo::builder(VideoFormat::Rgb, w, h)
        .fps(info.fps())
        .par(info.par())
        .build()
        .map_err(|e| e.to_string())?;
    let frame = VideoFrameRef::from_buffer_ref_readable(buffer, info)
        .map_err(|_| "cannot map the frame".to_string())?;
    let mut out = gst::Buffer::with_size(rgb_info.size()).map_err(|e| e.to_string())?;
    {
        let mut out_frame =
            VideoFrameRef::from_buffer_ref_writable(out.get_mut().expect("new buffer"), &rgb_info)
                .map_err(|_| "cannot map the snapshot".to_string())?;
        let conv = gst_video::VideoConverter::new(info, &rgb_info, None)
            .map_err(|e| format!("cannot convert {:?} to RGB: {e}", info.format()))?;
        conv.frame_ref(&frame, &mut out_frame);
    }
    let map = out.map_readable().map_err(|e| e.to_string())?;
    let stride = rgb_info.stride()[0] as usize;
    let mut packed = Vec::with_capacity((w * h * 3) as usize);
    for row in map.chunks(stride).take(h as usize) {
        packed.extend_from_slice(&row[..w as usize * 3]);
    }
    let tmp = path.with_extension("jpg.part");
    jpeg_encoder::Encoder::new_file(&tmp, 85)
        .and_then(|enc| enc.encode(&packed, w as u16, h as u16, jpeg_encoder::ColorType::Rgb))
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
