//! The log-prob gather on the SIMT emulator ([`crate::emu`]): the same
//! [`LogProbGatherPlan`] as the GPU path, with host buffers in place of device slices.

use super::logprob::LogProbMap;
use super::logprob_launch::{
    gather_kernel, offsets_i32, sum_kernel, GatherElement, LogProbGatherPlan, LogitsLayout,
};
use crate::emu::{self, check_schedules, watch, GuardedBuf, Options, Stats};
use crate::error::Result;
use crate::registry::{KernelParams, KernelRef};

/// One gather's buffers on the host (guarded, see [`GuardedBuf`]): the logits and the map's
/// arrays copied in, and the outputs filled with a poison value until a launch writes them.
pub struct EmuLogProbGather<T: GatherElement> {
    plan: LogProbGatherPlan,
    logits: GuardedBuf<T>,
    logit_rows: GuardedBuf<i32>,
    targets: GuardedBuf<u32>,
    offsets: GuardedBuf<i32>,
    /// Per map entry, written by the gather kernel.
    pub per_token: GuardedBuf<f32>,
    /// Per completion, written by the segment-sum kernel.
    pub sums: GuardedBuf<f32>,
}

impl<T: GatherElement> EmuLogProbGather<T> {
    /// Checks the gather like the GPU path ([`LogProbGatherPlan::new`]) and copies the inputs;
    /// both outputs start as `poison`.
    pub fn new(map: &LogProbMap, logits: &[T], layout: LogitsLayout, poison: f32) -> Result<Self> {
        let plan = LogProbGatherPlan::new(map, logits.len(), layout)?;
        Ok(Self {
            plan,
            logits: GuardedBuf::from_slice(logits),
            logit_rows: GuardedBuf::from_slice(map.logit_rows()),
            targets: GuardedBuf::from_slice(map.targets()),
            offsets: GuardedBuf::from_slice(&offsets_i32(map)?),
            per_token: GuardedBuf::filled(plan.entries(), poison),
            sums: GuardedBuf::filled(plan.completions(), poison),
        })
    }

    /// The shared launch preparation.
    pub fn plan(&self) -> &LogProbGatherPlan {
        &self.plan
    }

    /// Runs the gather kernel once (writes `per_token`).
    pub fn gather(&self, options: impl Into<Options>) -> Result<Stats> {
        let params = self.plan.gather_params(
            self.logits.as_ptr().cast(),
            self.logit_rows.as_ptr(),
            self.targets.as_ptr(),
            self.per_token.as_mut_ptr(),
        );
        let kernel = gather_kernel::<T>()?;
        run(
            kernel,
            self.plan.gather_dims(kernel.info()).as_ref(),
            &params,
            options,
        )
    }

    /// Runs the segment-sum kernel once (reads `per_token`, writes `sums`).
    pub fn sum(&self, options: impl Into<Options>) -> Result<Stats> {
        let params = self.plan.sum_params(
            self.per_token.as_ptr(),
            self.offsets.as_ptr(),
            self.sums.as_mut_ptr(),
        );
        let kernel = sum_kernel()?;
        run(
            kernel,
            self.plan.sum_dims(kernel.info()).as_ref(),
            &params,
            options,
        )
    }

    /// Both kernels under every schedule of [`crate::emu::Schedule::all`]`(seed)`, as
    /// [`check_schedules`] does: outputs restored before each run, guards of every buffer checked
    /// after it, and the outputs required to agree bit for bit (both kernels are deterministic).
    /// On success the outputs hold the common result.
    pub fn check_schedules(&self, seed: u64) -> Result<()> {
        let inputs = [
            watch("logits", &self.logits),
            watch("logit_rows", &self.logit_rows),
            watch("targets", &self.targets),
            watch("per_token", &self.per_token),
        ];
        check_schedules(gather_kernel::<T>()?.name(), seed, &inputs, |s| {
            self.gather(s)
        })?;
        let inputs = [
            watch("per_token", &self.per_token),
            watch("offsets", &self.offsets),
            watch("sums", &self.sums),
        ];
        check_schedules(sum_kernel()?.name(), seed, &inputs, |s| self.sum(s))?;
        Ok(())
    }
}

fn run<P: KernelParams>(
    kernel: KernelRef<P>,
    dims: Option<&crate::launch::LaunchDims>,
    params: &P,
    options: impl Into<Options>,
) -> Result<Stats> {
    match dims {
        // SAFETY: every pointer in params is a GuardedBuf of the owning EmuLogProbGather, sized
        // by the same plan: the map arrays and outputs have its entry and completion counts, and
        // the logits `positions * row_stride` elements, checked by the plan.
        Some(dims) => unsafe { emu::launch(kernel, dims, params, options) },
        None => Ok(Stats::default()),
    }
}
