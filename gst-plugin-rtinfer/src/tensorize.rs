//! Frame to model input tensor, the one path both elements use: `rtpreprocess` for the
//! tensor it attaches, `rtinfer` for frames that come without a fitting one. The CPU
//! converter, or the CUDA kernel when a device was given, writes into a pooled buffer.

use crate::convert::Converter;
use crate::cuda::{self, kernel};
use crate::spec::TensorSpec;
use gst::prelude::*;
use rtmeta::{TensorMeta, Transform};

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
    ) -> Result<Self, String> {
        let params = kernel::Params::new(info, spec)?;
        let pre = kernel::Preprocessor::new(dev)?;
        let out = dev
            .ctx
            .default_stream()
            .alloc_zeros::<u8>(params.output_bytes())
            .map_err(|e| e.to_string())?;
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
    ) -> Result<(Self, Option<String>), String> {
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
            .map_err(|e| format!("tensor pool: {e}"))?;
        pool.set_active(true)
            .map_err(|e| format!("tensor pool: {e}"))?;
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
    pub fn tensor(&mut self, buf: &gst::BufferRef) -> Result<(gst::Buffer, Transform), String> {
        let need = self.info.size();
        if buf.size() < need {
            return Err(format!(
                "a buffer of {} bytes is too small for its caps ({}x{} {:?} needs {need} bytes)",
                buf.size(),
                self.info.width(),
                self.info.height(),
                self.info.format()
            ));
        }
        let mut tensor = self
            .pool
            .acquire_buffer(None)
            .map_err(|e| format!("no tensor buffer: {e:?}"))?;
        {
            let mut map = tensor
                .get_mut()
                .expect("fresh pool buffer")
                .map_writable()
                .map_err(|e| e.to_string())?;
            match self.gpu.as_mut() {
                // One upload of the whole (single-memory) frame: plane offsets are the caps'.
                Some(gpu) if buf.n_memory() == 1 => {
                    let bytes = buf.map_readable().map_err(|e| e.to_string())?;
                    gpu.pre.run(&bytes, &gpu.params, &mut gpu.out)?;
                    gpu.pre.download(&gpu.out, &mut map)?;
                }
                _ => {
                    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &self.info)
                        .map_err(|_| "cannot map the video frame".to_string())?;
                    self.converter.convert(&frame, &mut map)?;
                }
            }
        }
        Ok((tensor, self.converter.geometry().transform))
    }

    /// The tensor of `buf` as the metadata rtpreprocess attaches.
    pub fn meta(&mut self, buf: &gst::BufferRef) -> Result<TensorMeta, String> {
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

impl Drop for Tensorizer {
    fn drop(&mut self) {
        let _ = self.pool.set_active(false);
    }
}
