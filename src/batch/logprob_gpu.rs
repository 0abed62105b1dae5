//! The log-prob gather on a device: the map's arrays are uploaded once
//! ([`DeviceLogProbMap::upload`]); each [`DeviceLogProbMap::gather`] then checks its arguments in
//! O(1), launches the gather and the segment sum on the caller's stream, and returns without a
//! host sync or a device allocation.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};

use super::logprob::LogProbMap;
use super::logprob_launch::{
    gather_kernel, offsets_i32, sum_kernel, GatherElement, LogProbGatherPlan, LogitsLayout,
    MapSummary,
};
use crate::cuda::{cuda_err, launch, upload_for_kernel, DeviceArgs, DeviceKernel, Gpu};
use crate::error::Result;
use crate::ffi::params::{PaLogProbGatherParams, PaSegmentSumParams};

/// A [`LogProbMap`] resident on a device, with the gather kernels looked up.
pub struct DeviceLogProbMap {
    /// The host map, kept to name the offending entry when a target is out of the vocabulary.
    host: LogProbMap,
    summary: MapSummary,
    logit_rows: CudaSlice<i32>,
    targets: CudaSlice<u32>,
    offsets: CudaSlice<i32>,
    /// Gather instantiations by [`GatherElement::INDEX`].
    gather: [DeviceKernel<PaLogProbGatherParams>; 3],
    sum: DeviceKernel<PaSegmentSumParams>,
}

/// Device outputs of a gather: per-token log-probs (one per map entry) and per-completion sums,
/// both f32.
pub struct DeviceLogProbs {
    pub per_token: CudaSlice<f32>,
    pub sums: CudaSlice<f32>,
}

impl DeviceLogProbMap {
    /// Uploads `map`'s logit rows, targets and int32 completion offsets on `stream` (once).
    pub fn upload(gpu: &Gpu, stream: &Arc<CudaStream>, map: &LogProbMap) -> Result<Self> {
        let summary = MapSummary::new(map)?;
        let offsets = offsets_i32(map)?;
        Ok(Self {
            host: map.clone(),
            summary,
            // At least one element each: a map can have no scored token (the gather is then
            // not launched, see LogProbGatherPlan::gather_dims).
            logit_rows: upload_for_kernel(stream, map.logit_rows(), "cuMemcpyHtoD (logit rows)")?,
            targets: upload_for_kernel(stream, map.targets(), "cuMemcpyHtoD (targets)")?,
            offsets: upload_for_kernel(stream, &offsets, "cuMemcpyHtoD (offsets)")?,
            gather: [
                gpu.load(gather_kernel::<half::bf16>()?)?,
                gpu.load(gather_kernel::<half::f16>()?)?,
                gpu.load(gather_kernel::<f32>()?)?,
            ],
            sum: gpu.load(sum_kernel()?)?,
        })
    }

    /// The host map this was uploaded from.
    pub fn map(&self) -> &LogProbMap {
        &self.host
    }

    /// Allocates outputs of the right lengths (once; reuse them across gathers).
    pub fn alloc_outputs(&self, stream: &Arc<CudaStream>) -> Result<DeviceLogProbs> {
        Ok(DeviceLogProbs {
            per_token: stream
                .alloc_zeros(self.summary.entries as usize)
                .map_err(cuda_err("cuMemAlloc (per_token)"))?,
            sums: stream
                .alloc_zeros(self.summary.completions as usize)
                .map_err(cuda_err("cuMemAlloc (sums)"))?,
        })
    }

    /// Gathers the log-probs of `logits` (`[rows * n, layout.row_stride]` elements of `T`) into
    /// `out` on `stream`: asynchronous, no host sync, no allocation. Errors (before anything is
    /// launched) as [`LogProbGatherPlan::new`], and `LengthMismatch` for outputs of the wrong
    /// lengths.
    pub fn gather<T: GatherElement>(
        &self,
        stream: &CudaStream,
        logits: &impl DevicePtr<T>,
        layout: LogitsLayout,
        out: &mut DeviceLogProbs,
    ) -> Result<()> {
        let plan =
            LogProbGatherPlan::from_summary(&self.host, &self.summary, logits.len(), layout)?;
        plan.check_outputs(out.per_token.len(), out.sums.len())?;
        let gather = &self.gather[T::INDEX];
        let mut args = DeviceArgs::new(stream);
        let logits_ptr = args.read(logits)?;
        let rows_ptr = args.read(&self.logit_rows)?;
        let targets_ptr = args.read(&self.targets)?;
        let offsets_ptr = args.read(&self.offsets)?;
        let DeviceLogProbs { per_token, sums } = out;
        let per_token_ptr = args.write(per_token)?;
        let sums_ptr = args.write(sums)?;
        if let Some(dims) = plan.gather_dims(gather.kernel().info()) {
            let params = plan.gather_params(
                logits_ptr as *const _,
                rows_ptr as *const i32,
                targets_ptr as *const u32,
                per_token_ptr as *mut f32,
            );
            // SAFETY: the plan checked the logits cover every row the map reads and the outputs'
            // lengths; the map arrays were uploaded from the same map; `args` keeps every buffer
            // alive and orders it on `stream` until the launches are enqueued.
            unsafe { launch(gather, stream, &dims, &params)? };
        }
        if let Some(dims) = plan.sum_dims(self.sum.kernel().info()) {
            let params = plan.sum_params(
                per_token_ptr as *const f32,
                offsets_ptr as *const i32,
                sums_ptr as *mut f32,
            );
            // SAFETY: as above; `per_token` was written by the gather earlier on `stream`.
            unsafe { launch(&self.sum, stream, &dims, &params)? };
        }
        Ok(())
    }
}
