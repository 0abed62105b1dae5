//! The log-prob gather on a device: the map's arrays are uploaded once
//! ([`DeviceLogProbMap::upload`]); each [`DeviceLogProbMap::gather`] then checks its arguments in
//! O(1), launches the gather and the segment sum on the caller's stream, and returns without a
//! host sync or a device allocation.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

use super::logprob::LogProbMap;
use super::logprob_launch::{
    offsets_i32, GatherElement, LogProbGatherBf16, LogProbGatherF16, LogProbGatherF32,
    LogProbGatherPlan, LogitsLayout, MapSummary, SegmentSumF32,
};
use crate::cuda::{cuda_err, upload_for_kernel, Gpu};
use crate::error::Result;

/// A [`LogProbMap`] resident on a device, with the gather kernels looked up.
pub struct DeviceLogProbMap {
    /// The host map, kept to name the offending entry when a target is out of the vocabulary.
    host: LogProbMap,
    summary: MapSummary,
    logit_rows: CudaSlice<i32>,
    targets: CudaSlice<u32>,
    offsets: CudaSlice<i32>,
    /// Gather instantiations by [`GatherElement::INDEX`].
    gather: [CudaFunction; 3],
    sum: CudaFunction,
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
                gpu.function::<LogProbGatherBf16>()?,
                gpu.function::<LogProbGatherF16>()?,
                gpu.function::<LogProbGatherF32>()?,
            ],
            sum: gpu.function::<SegmentSumF32>()?,
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
        gpu: &Gpu,
        stream: &CudaStream,
        logits: &impl DevicePtr<T>,
        layout: LogitsLayout,
        out: &mut DeviceLogProbs,
    ) -> Result<()> {
        let plan =
            LogProbGatherPlan::from_summary(&self.host, &self.summary, logits.len(), layout)?;
        plan.check_outputs(out.per_token.len(), out.sums.len())?;
        let (logits_ptr, _g0) = logits.device_ptr(stream);
        let (rows_ptr, _g1) = self.logit_rows.device_ptr(stream);
        let (targets_ptr, _g2) = self.targets.device_ptr(stream);
        let (offsets_ptr, _g3) = self.offsets.device_ptr(stream);
        let (per_token_ptr, _g4) = out.per_token.device_ptr_mut(stream);
        if let Some(dims) = plan.gather_dims() {
            let params = plan.gather_params(
                logits_ptr as *const _,
                rows_ptr as *const i32,
                targets_ptr as *const u32,
                per_token_ptr as *mut f32,
            );
            // SAFETY: the plan checked the logits cover every row the map reads and the outputs'
            // lengths; the map arrays were uploaded from the same map; the guards keep every
            // buffer alive and ordered on `stream` until the launch completes.
            unsafe {
                gpu.launch::<T::Kernel>(&self.gather[T::INDEX], stream, &dims, &params)?;
            }
        }
        let (sums_ptr, _g5) = out.sums.device_ptr_mut(stream);
        if let Some(dims) = plan.sum_dims() {
            let params = plan.sum_params(
                per_token_ptr as *const f32,
                offsets_ptr as *const i32,
                sums_ptr as *mut f32,
            );
            // SAFETY: as above; `per_token` was written by the gather earlier on `stream`.
            unsafe { gpu.launch::<SegmentSumF32>(&self.sum, stream, &dims, &params)? };
        }
        Ok(())
    }
}
