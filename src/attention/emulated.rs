//! The forward on the CPU emulator: host slices (or host addresses: the raw entry) in, the same
//! kernel choice, launch preparation and checks as the device path ([`super::call`]), the
//! kernels' host build run by [`crate::emu::launch`]. This is what `cargo test` exercises.

use crate::emu::{Options, Stats};
use crate::error::Result;
use crate::plan::Plan;
use crate::scale::Scale;
use crate::shape::AttnShape;

use super::call;
use super::configs::{emulated_forward, KernelChoice};
use super::dtype::{AttnDtype, Dtype};
use super::exec::EmuExec;
use super::raw::RawForward;
use super::tensors::ForwardViews;

/// Inputs and outputs of one emulated forward call ([`ForwardViews`] of host slices; layouts as
/// [`super::DeviceTensors`]).
pub type HostTensors<'a, T> = ForwardViews<&'a [T], &'a mut [T], &'a mut [f32]>;

/// [`super::Forward::run`] on the emulator, under `options` (a [`crate::emu::Schedule`]
/// converts), with the kernel the default choice picks for the sm80 path. The plan needs no
/// upload. Same checks and errors, plus [`crate::Error::Emulator`] when the kernel breaks a rule
/// the emulator checks.
pub fn forward_emulated<T: AttnDtype>(
    plan: &Plan,
    shape: &AttnShape,
    t: HostTensors<'_, T>,
    scale: impl Into<Scale>,
    options: impl Into<Options>,
) -> Result<Stats> {
    forward_emulated_with(plan, shape, t, scale, KernelChoice::default(), options)
}

/// [`forward_emulated`] with an explicit kernel choice (any path and registered tile: the
/// emulator has no shared-memory limit below the largest a GPU allows). An sm90a kernel runs
/// with emulator-encoded tensor maps of the same views.
pub fn forward_emulated_with<T: AttnDtype>(
    plan: &Plan,
    shape: &AttnShape,
    mut t: HostTensors<'_, T>,
    scale: impl Into<Scale>,
    choice: KernelChoice,
    options: impl Into<Options>,
) -> Result<Stats> {
    let raw = t.raw();
    // SAFETY: the addresses are slices with their own lengths, borrowed (O and LSE mutably) by
    // `t` for the whole synchronous call.
    unsafe { forward_emulated_raw(plan, shape, Dtype::of::<T>(), &raw, scale, choice, options) }
}

/// The raw entry's forward on the emulator: [`forward_emulated_with`] on host memory given by
/// address ([`super::raw`]). The same bits as the typed call on the same memory.
///
/// # Safety
/// The raw entry's contract ([`super::raw`]), with host addresses.
pub unsafe fn forward_emulated_raw(
    plan: &Plan,
    shape: &AttnShape,
    dtype: Dtype,
    t: &RawForward,
    scale: impl Into<Scale>,
    choice: KernelChoice,
    options: impl Into<Options>,
) -> Result<Stats> {
    let kernel = emulated_forward(&choice, dtype.kernel_dtype(), shape.head_dim)?;
    let mut exec = EmuExec::new(options.into());
    let dt = dtype.kernel_dtype();
    // SAFETY: forwarded to the caller.
    unsafe { call::forward(&mut exec, kernel, plan, shape, dt, &t.bufs(), scale.into())? };
    Ok(exec.stats)
}
