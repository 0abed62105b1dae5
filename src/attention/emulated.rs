//! The forward on the CPU emulator: host slices in, the same kernel choice and launch preparation
//! as the GPU path, the kernels' host build run by [`crate::emu::launch`]. This is what
//! `cargo test` exercises.

use crate::emu::{self, Options, Stats};
use crate::error::Result;
use crate::plan::Plan;
use crate::registry::Arch;
use crate::shape::AttnShape;
use crate::sm90::TensorMapDesc;

use super::configs::{emulated_arch, select_forward, tile_shape, KernelChoice};
use super::dtype::AttnDtype;
use super::prepare::{prepare_forward, ForwardCall, ListAddrs};
use super::prepare_sm90::prepare_forward_sm90;
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

/// [`super::Forward::run`] on the emulator, under `options` (a [`emu::Schedule`] converts), with
/// the kernel the default choice picks for the sm80 path. The plan needs no upload. Same checks
/// and errors, plus [`crate::Error::Emulator`] when the kernel breaks a rule the emulator checks.
pub fn forward_emulated<T: AttnDtype>(
    plan: &Plan,
    shape: &AttnShape,
    t: HostTensors<'_, T>,
    scale: f32,
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
    t: HostTensors<'_, T>,
    scale: f32,
    choice: KernelChoice,
    options: impl Into<Options>,
) -> Result<Stats> {
    let kernel = select_forward(
        emulated_arch(&choice),
        T::KERNEL_DTYPE,
        shape.head_dim,
        choice.tile,
        |_| true,
    )?;
    let mask = plan.mask(tile_shape(kernel.tile.expect("forward kernels have tiles")))?;
    let addr = |s: &[i32]| s.as_ptr() as usize as u64;
    let call = ForwardCall {
        kernel,
        mask,
        q_major: ListAddrs {
            offsets: addr(mask.q_offsets()),
            entries: addr(mask.q_entries()),
            order: addr(mask.heaviest_first()),
        },
        vis_end: addr(plan.vis_end().as_slice()),
        shape,
        dtype: T::KERNEL_DTYPE,
        q: raw(t.q.data, t.q.strides),
        k: raw(t.k.data, t.k.strides),
        v: raw(t.v.data, t.v.strides),
        o: raw(t.o.data, t.o.strides),
        lse_len: t.lse.len(),
        lse_addr: t.lse.as_ptr() as usize as u64,
        scale,
    };
    // SAFETY (both launches): the preparation checked every view against its slice and that O
    // does not overlap itself; the plan arrays are the ones its lists index; the tensor maps
    // describe the checked Q, K and V views. `t` borrows the slices (O and LSE mutably) for the
    // whole synchronous launch.
    match kernel.arch {
        Arch::Sm80 => {
            let l = prepare_forward(&call)?;
            unsafe { emu::launch(l.kernel, &l.dims, &l.params, options) }
        }
        Arch::Sm90a => {
            let l = prepare_forward_sm90(&call, TensorMapDesc::encode_emulator)?;
            unsafe { emu::launch(l.kernel, &l.dims, &l.params, options) }
        }
    }
}
