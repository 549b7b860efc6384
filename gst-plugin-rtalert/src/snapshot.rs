//! JPEG snapshots of the frames that raised alerts.

use gst_video::{VideoFormat, VideoFrameRef, VideoInfo};
use std::path::{Path, PathBuf};

/// Why a snapshot was not written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}x{1} is too large for JPEG")]
    TooLarge(u32, u32),
    #[error("cannot convert {format:?} to RGB: {why}")]
    Convert { format: VideoFormat, why: String },
    #[error("cannot encode the JPEG: {0}")]
    Encode(String),
    #[error("cannot write {}: {why}", path.display())]
    Write {
        path: PathBuf,
        why: String,
        /// The disk is full.
        full: bool,
    },
}

impl SnapshotError {
    fn write(path: &Path, e: &std::io::Error) -> Self {
        SnapshotError::Write {
            path: path.to_owned(),
            why: e.to_string(),
            full: e.kind() == std::io::ErrorKind::StorageFull,
        }
    }

    /// The resource error an element posts: `NoSpaceLeft` for a full disk, else `Write`.
    pub fn resource_error(&self) -> gst::ResourceError {
        match self {
            SnapshotError::Write { full: true, .. } => gst::ResourceError::NoSpaceLeft,
            _ => gst::ResourceError::Write,
        }
    }
}

/// Writes `buffer` (a frame described by `info`) as a JPEG file.
pub fn write_jpeg(
    buffer: &gst::BufferRef,
    info: &VideoInfo,
    path: &Path,
) -> Result<(), SnapshotError> {
    let (w, h) = (info.width(), info.height());
    if w > u16::MAX as u32 || h > u16::MAX as u32 {
        return Err(SnapshotError::TooLarge(w, h));
    }
    let convert = |why: &dyn std::fmt::Display| SnapshotError::Convert {
        format: info.format(),
        why: why.to_string(),
    };
    let rgb_info = VideoInfo::builder(VideoFormat::Rgb, w, h)
        .fps(info.fps())
        .par(info.par())
        .build()
        .map_err(|e| convert(&e))?;
    let frame = VideoFrameRef::from_buffer_ref_readable(buffer, info)
        .map_err(|_| convert(&"cannot map the frame"))?;
    let mut out = gst::Buffer::with_size(rgb_info.size()).map_err(|e| convert(&e))?;
    {
        let mut out_frame =
            VideoFrameRef::from_buffer_ref_writable(out.get_mut().expect("new buffer"), &rgb_info)
                .map_err(|_| convert(&"cannot map the snapshot"))?;
        let conv =
            gst_video::VideoConverter::new(info, &rgb_info, None).map_err(|e| convert(&e))?;
        conv.frame_ref(&frame, &mut out_frame);
    }
    let map = out.map_readable().map_err(|e| convert(&e))?;
    let stride = rgb_info.stride()[0] as usize;
    let mut packed = Vec::with_capacity((w * h * 3) as usize);
    for row in map.chunks(stride).take(h as usize) {
        packed.extend_from_slice(&row[..w as usize * 3]);
    }
    // Encoded in memory, then written: the encoder's file writer drops the errors of its
    // last flush, so a full disk would leave a truncated JPEG behind unreported.
    let mut jpeg = Vec::with_capacity(packed.len() / 8);
    jpeg_encoder::Encoder::new(&mut jpeg, 85)
        .encode(&packed, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let tmp = path.with_extension("jpg.part");
    std::fs::write(&tmp, &jpeg).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        SnapshotError::write(&tmp, &e)
    })?;
    std::fs::rename(&tmp, path).map_err(|e| SnapshotError::write(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> (gst::Buffer, VideoInfo) {
        gst::init().unwrap();
        let info = VideoInfo::builder(VideoFormat::I420, 64, 48)
            .build()
            .unwrap();
        (gst::Buffer::with_size(info.size()).unwrap(), info)
    }

    #[test]
    fn a_full_disk_is_no_space_left_and_leaves_no_part_file() {
        let (buf, info) = frame();
        let dir = std::env::temp_dir().join(format!("rtalert-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.jpg");
        write_jpeg(&buf, &info, &path).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        // The next snapshot's file is the full device.
        let full = dir.join("b.jpg");
        std::os::unix::fs::symlink("/dev/full", full.with_extension("jpg.part")).unwrap();
        let e = write_jpeg(&buf, &info, &full).unwrap_err();
        assert_eq!(e.resource_error(), gst::ResourceError::NoSpaceLeft, "{e}");
        assert!(e.to_string().contains("b.jpg.part"), "{e}");
        assert!(!full.with_extension("jpg.part").exists() && !full.exists());
        let e = write_jpeg(&buf, &info, Path::new("/proc/rtalert/c.jpg")).unwrap_err();
        assert_eq!(e.resource_error(), gst::ResourceError::Write, "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
