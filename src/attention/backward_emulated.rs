//! The backward on the CPU emulator: host slices (or host addresses: the raw entry) in, the same
//! kernel choice, launch preparation and checks as the device path ([`super::call`]), the three
//! kernels' host builds run one after the other by [`crate::emu::launch`]. This is what
//! `cargo test` exercises.

use crate::emu::{GuardedBuf, Options, Stats};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::scale::Scale;
use crate::shape::AttnShape;

use super::call;
use super::configs::{emulated_backward_arch, select_backward, BackwardChoice};
use super::dtype::{AttnDtype, Dtype};
use super::exec::EmuExec;
use super::raw::{RawBackward, RawBuffer, RawWorkspace};
use super::tensors::BackwardViews;
use super::workspace::workspace_len;

/// Inputs and outputs of one emulated backward call ([`BackwardViews`] of host slices; layouts
/// as [`super::BackwardTensors`]).
pub type HostBackwardTensors<'a, T> = BackwardViews<&'a [T], &'a mut [T], &'a [f32]>;

/// [`super::Backward::run`] on the emulator, under `options` (a [`crate::emu::Schedule`]
/// converts), with the kernels the default choice picks for the sm80 path. The plan needs no
/// upload; the workspace is allocated here (poisoned with NaN and guarded: a kernel that reads a
/// workspace element the preprocess did not write, or writes outside it, fails). Same checks
/// and errors, plus [`Error::Emulator`] when a kernel breaks a rule the emulator checks.
pub fn backward_emulated<T: AttnDtype>(
    plan: &Plan,
    shape: &AttnShape,
    t: HostBackwardTensors<'_, T>,
    scale: impl Into<Scale>,
    options: impl Into<Options>,
) -> Result<Stats> {
    backward_emulated_with(plan, shape, t, scale, BackwardChoice::default(), options)
}

/// [`backward_emulated`] with an explicit kernel choice. With `arch: Some(Arch::Sm90a)` the dK/dV
/// and dQ kernels are the sm90a ones, run with emulator-encoded tensor maps of the same views, and
/// the preprocess the sm80 one (it has no sm90a version:
/// [`super::configs::backward_family_path`]).
pub fn backward_emulated_with<T: AttnDtype>(
    plan: &Plan,
    shape: &AttnShape,
    mut t: HostBackwardTensors<'_, T>,
    scale: impl Into<Scale>,
    choice: BackwardChoice,
    options: impl Into<Options>,
) -> Result<Stats> {
    let ws_len = workspace_len(shape)?;
    let lse_log2 = GuardedBuf::filled(ws_len, f32::NAN);
    let delta = GuardedBuf::filled(ws_len, f32::NAN);
    let ws = |b: &GuardedBuf<f32>| RawBuffer {
        addr: b.as_ptr() as usize as u64,
        len: b.len(),
    };
    let raw = t.raw(RawWorkspace {
        lse_log2: ws(&lse_log2),
        delta: ws(&delta),
    });
    // SAFETY: the addresses are slices (and the guarded workspace) with their own lengths,
    // borrowed (dQ, dK, dV mutably) by `t` for the whole synchronous call.
    let stats = unsafe {
        backward_emulated_raw(plan, shape, Dtype::of::<T>(), &raw, scale, choice, options)?
    };
    for (name, buf) in [
        ("workspace lse_log2", &lse_log2),
        ("workspace delta", &delta),
    ] {
        buf.check_guards(name).map_err(|detail| Error::Emulator {
            kernel: super::configs::BACKWARD_PRE_FAMILY,
            detail,
        })?;
    }
    Ok(stats)
}

/// The raw entry's backward on the emulator: [`backward_emulated_with`] on host memory given by
/// address, the workspace included ([`super::raw`]). The same bits as the typed call.
///
/// # Safety
/// The raw entry's contract ([`super::raw`]), with host addresses.
pub unsafe fn backward_emulated_raw(
    plan: &Plan,
    shape: &AttnShape,
    dtype: Dtype,
    t: &RawBackward,
    scale: impl Into<Scale>,
    choice: BackwardChoice,
    options: impl Into<Options>,
) -> Result<Stats> {
    let kernels = select_backward(
        emulated_backward_arch(&choice),
        dtype.kernel_dtype(),
        shape.head_dim,
        &choice,
        |_| true,
    )?;
    let mut exec = EmuExec::new(options.into());
    let dt = dtype.kernel_dtype();
    // SAFETY: forwarded to the caller.
    unsafe { call::backward(&mut exec, kernels, plan, shape, dt, &t.bufs(), scale.into())? };
    Ok(exec.stats)
}
