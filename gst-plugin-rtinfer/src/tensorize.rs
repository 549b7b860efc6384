//! Frame to model input tensor, the one path both elements use: `rtpreprocess` for the
//! tensor it attaches, `rtinfer` for frames that come without a fitting one. The CPU
//! converter, or the CUDA kernel when a device was given, writes into a pooled buffer.

use crate::convert::{ConvertError, Converter};
use crate::cuda::{self, kernel};
use crate::spec::TensorSpec;
use gst::prelude::*;
use rtmeta::{TensorMeta, Transform};

/// Why a stream's tensors cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TensorizeError {
    #[error("no caps before the first frame")]
    NoCaps,
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error(
        "a buffer of {size} bytes is too small for its caps ({width}x{height} {format:?} needs \
         {need} bytes)"
    )]
    FrameTooSmall {
        size: usize,
        need: usize,
        width: u32,
        height: u32,
        format: gst_video::VideoFormat,
    },
    #[error("cannot map the video frame")]
    Unmappable,
    #[error("tensor pool: {0}")]
    Pool(String),
    #[error("CUDA preprocessing: {0}")]
    Cuda(#[from] cuda::CudaError),
}

impl TensorizeError {
    /// The GStreamer error the elements post for it, `context` first in its message.
    pub fn to_gst(&self, context: &str) -> gst::ErrorMessage {
        use TensorizeError::*;
        match self {
            NoCaps => gst::error_msg!(gst::CoreError::Negotiation, ("{context}: {self}")),
            Convert(e) if e.is_negotiation() => {
                gst::error_msg!(gst::CoreError::Negotiation, ("{context}: {self}"))
            }
            Convert(ConvertError::TensorBuffer { .. } | ConvertError::Misaligned) => {
                gst::error_msg!(gst::CoreError::Failed, ("{context}: {self}"))
            }
            Convert(_) | FrameTooSmall { .. } | Unmappable => gst::error_msg!(
                gst::StreamError::Format,
                ("{context}: the frame does not match its caps: {self}")
            ),
            Pool(_) => gst::error_msg!(gst::ResourceError::Failed, ("{context}: {self}")),
            Cuda(_) => gst::error_msg!(gst::StreamError::Failed, ("{context}: {self}")),
        }
    }
}

/// The kernel, its parameters for the caps, and its device output buffer.
struct Gpu {
    pre: kernel::Preprocessor,
    params: kernel::Params,
    out: cudarc::driver::CudaSlice<u8>,
}

impl Gpu {
    fn new(
        dev: &cuda::Device,
        info: &gst_video::VideoInfo,
        spec: &TensorSpec,
    ) -> Result<Self, cuda::CudaError> {
        let params = kernel::Params::new(info, spec)?;
        let pre = kernel::Preprocessor::new(dev)?;
        let out = dev
            .ctx
            .default_stream()
            .alloc_zeros::<u8>(params.output_bytes())
            .map_err(|source| cuda::CudaError::Driver {
                what: "allocating the tensor".into(),
                source,
            })?;
        Ok(Gpu { pre, params, out })
    }
}

/// Makes the tensors of one stream's frames for one caps and spec.
pub struct Tensorizer {
    info: gst_video::VideoInfo,
    converter: Converter,
    pool: gst::BufferPool,
    gpu: Option<Gpu>,
}

impl Tensorizer {
    /// For frames of `info`; `cuda` runs the kernel on that device. Also returns why the
    /// kernel could not be used there, if it could not (the CPU converter runs then).
    pub fn new(
        info: &gst_video::VideoInfo,
        spec: &TensorSpec,
        cuda: Option<&cuda::Device>,
        min_buffers: u32,
    ) -> Result<(Self, Option<cuda::CudaError>), TensorizeError> {
        let converter = Converter::new(spec, info)?;
        let (gpu, why) = match cuda.map(|d| Gpu::new(d, info, spec)) {
            Some(Ok(gpu)) => (Some(gpu), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let pool = gst::BufferPool::new();
        let mut config = pool.config();
        config.set_params(None, converter.byte_size() as u32, min_buffers, 0);
        pool.set_config(config)
            .map_err(|e| TensorizeError::Pool(e.to_string()))?;
        pool.set_active(true)
            .map_err(|e| TensorizeError::Pool(e.to_string()))?;
        let t = Tensorizer {
            info: info.clone(),
            converter,
            pool,
            gpu,
        };
        Ok((t, why))
    }

    pub fn on_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    pub fn spec(&self) -> &TensorSpec {
        self.converter.spec()
    }

    /// The tensor of `buf` and its mapping back to the frame.
    pub fn tensor(
        &mut self,
        buf: &gst::BufferRef,
    ) -> Result<(gst::Buffer, Transform), TensorizeError> {
        // Frames with a video meta of their own layout (tightly packed rows) are checked by
        // the frame mapping instead.
        let need = self.info.size();
        if laid_out_as_caps(buf, &self.info) && buf.size() < need {
            return Err(TensorizeError::FrameTooSmall {
                size: buf.size(),
                need,
                width: self.info.width(),
                height: self.info.height(),
                format: self.info.format(),
            });
        }
        let mut tensor = self
            .pool
            .acquire_buffer(None)
            .map_err(|e| TensorizeError::Pool(format!("no tensor buffer: {e:?}")))?;
        {
            let mut map = tensor
                .get_mut()
                .expect("fresh pool buffer")
                .map_writable()
                .map_err(|e| TensorizeError::Pool(e.to_string()))?;
            match self.gpu.as_mut() {
                // One upload of the whole (single-memory) frame, whose planes lie where the
                // caps say: a video meta with other strides or offsets (a padded decoder
                // output) goes through the CPU converter, which follows it.
                Some(gpu) if buf.n_memory() == 1 && laid_out_as_caps(buf, &self.info) => {
                    let bytes = buf.map_readable().map_err(|_| TensorizeError::Unmappable)?;
                    gpu.pre
                        .run(&bytes, &gpu.params, &mut gpu.out)
                        .and_then(|()| gpu.pre.download(&gpu.out, &mut map))
                        .map_err(TensorizeError::Cuda)?;
                }
                _ => {
                    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &self.info)
                        .map_err(|_| TensorizeError::Unmappable)?;
                    self.converter.convert(&frame, &mut map)?;
                }
            }
        }
        Ok((tensor, self.converter.geometry().transform))
    }

    /// The tensor of `buf` as the metadata rtpreprocess attaches.
    pub fn meta(&mut self, buf: &gst::BufferRef) -> Result<TensorMeta, TensorizeError> {
        let (data, transform) = self.tensor(buf)?;
        let spec = self.converter.spec();
        Ok(TensorMeta {
            data,
            dtype: spec.dtype,
            layout: spec.layout,
            channel_order: spec.order,
            width: spec.width,
            height: spec.height,
            channels: 3,
            transform,
        })
    }
}

/// Whether `buf`'s planes are where `info` (the caps) puts them: no video meta, or one with
/// the same strides and offsets.
fn laid_out_as_caps(buf: &gst::BufferRef, info: &gst_video::VideoInfo) -> bool {
    buf.meta::<gst_video::VideoMeta>().is_none_or(|m| {
        let n = info.n_planes() as usize;
        m.stride().get(..n) == info.stride().get(..n)
            && m.offset().get(..n) == info.offset().get(..n)
    })
}

impl Drop for Tensorizer {
    fn drop(&mut self) {
        let _ = self.pool.set_active(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_frames_laid_out_as_their_caps_go_to_the_gpu_in_one_upload() {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 64, 48)
            .build()
            .unwrap();
        let mut buf = gst::Buffer::with_size(info.size() * 2).unwrap();
        assert!(laid_out_as_caps(&buf, &info), "no video meta");
        let b = buf.get_mut().unwrap();
        let offsets = info.offset().to_vec();
        let strides = info.stride().to_vec();
        gst_video::VideoMeta::add_full(
            b,
            gst_video::VideoFrameFlags::empty(),
            info.format(),
            64,
            48,
            &offsets,
            &strides,
        )
        .unwrap();
        assert!(laid_out_as_caps(&buf, &info), "the caps' layout");
        let mut buf = gst::Buffer::with_size(info.size() * 2).unwrap();
        // A decoder's padded planes: 128-byte rows.
        let padded = [128, 64, 64];
        let offsets = [0, 128 * 48, 128 * 48 + 64 * 24];
        gst_video::VideoMeta::add_full(
            buf.get_mut().unwrap(),
            gst_video::VideoFrameFlags::empty(),
            info.format(),
            64,
            48,
            &offsets,
            &padded,
        )
        .unwrap();
        assert!(!laid_out_as_caps(&buf, &info));
    }
}
