//! The forward on the CPU emulator: host slices in, the same launch preparation as the GPU path,
//! the kernels' host build run by [`crate::emu::launch`]. This is what `cargo test` exercises.

use crate::emu::{self, Options, Stats};
use crate::error::Result;
use crate::plan::Plan;
use crate::shape::AttnShape;

use super::dtype::AttnDtype;
use super::kernels::with_forward_kernel;
use super::prepare::{prepare_forward, ForwardCall, PlanAddrs};
use super::view::{RawView, View};

/// Inputs and outputs of one emulated forward call (layouts as [`super::DeviceTensors`]).
pub struct HostTensors<'a, T> {
    pub q: View<&'a [T]>,
    pub k: View<&'a [T]>,
    pub v: View<&'a [T]>,
    pub o: View<&'a mut [T]>,
    pub lse: &'a mut [f32],
}

fn raw<T>(data: &[T], strides: super::Strides) -> RawView {
    RawView {
        len: data.len(),
        addr: data.as_ptr() as usize as u64,
        strides,
    }
}

/// [`super::Forward::run`] on the emulator, under `options` (a [`emu::Schedule`] converts).
/// The plan needs no upload. Same checks and errors, plus [`crate::Error::Emulator`] when the
/// kernel breaks a rule the emulator checks.
pub fn forward_emulated<T: AttnDtype>(
    plan: &Plan,
    shape: &AttnShape,
    t: HostTensors<'_, T>,
    scale: f32,
    options: impl Into<Options>,
) -> Result<Stats> {
    let mask = plan.forward_mask();
    let addr = |s: &[i32]| s.as_ptr() as usize as u64;
    let launch = prepare_forward(&ForwardCall {
        mask,
        plan: PlanAddrs {
            vis_end: addr(plan.vis_end().as_slice()),
            q_offsets: addr(mask.q_offsets()),
            q_entries: addr(mask.q_entries()),
            heaviest_first: addr(mask.heaviest_first()),
        },
        shape,
        is_bf16: T::IS_BF16,
        q: raw(t.q.data, t.q.strides),
        k: raw(t.k.data, t.k.strides),
        v: raw(t.v.data, t.v.strides),
        o: raw(t.o.data, t.o.strides),
        lse_len: t.lse.len(),
        lse_addr: t.lse.as_ptr() as usize as u64,
        scale,
    })?;
    let options = options.into();
    // SAFETY: prepare_forward checked every view against its slice and that O does not overlap
    // itself; the plan arrays are the ones its lists index. `t` borrows the slices (O and LSE
    // mutably) for the whole synchronous launch.
    with_forward_kernel!(launch.kernel, K => unsafe {
        emu::launch::<K>(&launch.dims, &launch.params, options)
    })
}
