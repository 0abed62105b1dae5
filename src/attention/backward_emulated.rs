//! The backward on the CPU emulator: host slices in, the same kernel choice and launch preparation
//! as the GPU path, the three kernels' host builds run one after the other by
//! [`crate::emu::launch`]. This is what `cargo test` exercises.

use crate::emu::{self, GuardedBuf, Options, Stats};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::shape::AttnShape;
use crate::sm90::TensorMapDesc;

use super::backward_prepare::{prepare_backward, BackwardCall, DkvLaunch, DqLaunch};
use super::checks::ListAddrs;
use super::configs::{emulated_backward_arch, select_backward, tile_shape, BackwardChoice};
use super::dtype::AttnDtype;
use super::view::{RawView, View};
use super::workspace::workspace_len;

/// Inputs and outputs of one emulated backward call (layouts as [`super::BackwardTensors`]).
pub struct HostBackwardTensors<'a, T> {
    pub q: View<&'a [T]>,
    pub k: View<&'a [T]>,
    pub v: View<&'a [T]>,
    /// The forward's output and LSE (natural log, `[rows, q_heads, n]`).
    pub o: View<&'a [T]>,
    pub lse: &'a [f32],
    pub d_o: View<&'a [T]>,
    pub dq: View<&'a mut [T]>,
    pub dk: View<&'a mut [T]>,
    pub dv: View<&'a mut [T]>,
}

fn raw<T>(data: &[T], strides: super::Strides) -> RawView {
    RawView {
        len: data.len(),
        addr: data.as_ptr() as usize as u64,
        strides,
    }
}

fn add(a: Stats, b: Stats) -> Stats {
    Stats {
        ctas: a.ctas + b.ctas,
        barriers: a.barriers + b.barriers,
        collectives: a.collectives + b.collectives,
        fiber_switches: a.fiber_switches + b.fiber_switches,
    }
}

/// [`super::Backward::run`] on the emulator, under `options` (a [`emu::Schedule`] converts), with
/// the kernels the default choice picks for the sm80 path. The plan needs no upload; the
/// workspace is allocated here (poisoned with NaN and guarded: a kernel that reads a workspace
/// element the preprocess did not write, or writes outside it, fails). Same checks and errors,
/// plus [`Error::Emulator`] when a kernel breaks a rule the emulator checks.
pub fn backward_emulated<T: AttnDtype>(
    plan: &Plan,
    shape: &AttnShape,
    t: HostBackwardTensors<'_, T>,
    scale: f32,
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
    t: HostBackwardTensors<'_, T>,
    scale: f32,
    choice: BackwardChoice,
    options: impl Into<Options>,
) -> Result<Stats> {
    let options = options.into();
    let kernels = select_backward(
        emulated_backward_arch(&choice),
        T::KERNEL_DTYPE,
        shape.head_dim,
        &choice,
        |_| true,
    )?;
    let tile = |k: &crate::registry::KernelInfo| tile_shape(k.tile.expect("tiled kernel"));
    let dkv_mask = plan.mask(tile(kernels.dkv))?;
    let dq_mask = plan.mask(tile(kernels.dq))?;
    let addr = |s: &[i32]| s.as_ptr() as usize as u64;
    let ws_len = workspace_len(shape)?;
    let lse_log2 = GuardedBuf::filled(ws_len, f32::NAN);
    let delta = GuardedBuf::filled(ws_len, f32::NAN);
    let launch = prepare_backward(
        &BackwardCall {
            kernels,
            dkv_mask,
            k_major: ListAddrs {
                offsets: addr(dkv_mask.k_offsets()),
                entries: addr(dkv_mask.k_entries()),
                order: addr(dkv_mask.k_heaviest_first()),
            },
            dq_mask,
            q_major: ListAddrs {
                offsets: addr(dq_mask.q_offsets()),
                entries: addr(dq_mask.q_entries()),
                order: addr(dq_mask.heaviest_first()),
            },
            vis_end: addr(plan.vis_end().as_slice()),
            shape,
            dtype: T::KERNEL_DTYPE,
            q: raw(t.q.data, t.q.strides),
            k: raw(t.k.data, t.k.strides),
            v: raw(t.v.data, t.v.strides),
            o: raw(t.o.data, t.o.strides),
            d_o: raw(t.d_o.data, t.d_o.strides),
            dq: raw(t.dq.data, t.dq.strides),
            dk: raw(t.dk.data, t.dk.strides),
            dv: raw(t.dv.data, t.dv.strides),
            lse_len: t.lse.len(),
            lse_addr: t.lse.as_ptr() as usize as u64,
            ws_len,
            ws_lse_log2: lse_log2.as_ptr() as usize as u64,
            ws_delta: delta.as_ptr() as usize as u64,
            scale,
        },
        TensorMapDesc::encode_emulator,
    )?;
    // SAFETY: prepare_backward checked every view against its slice, that the written views do
    // not overlap each other or the inputs, and the workspace against its length; the plan
    // arrays are the ones its lists index; the sm90a kernels' tensor maps describe the checked Q,
    // dO, K and V views. `t` borrows the slices (dQ, dK, dV mutably) and the workspace lives for
    // the whole synchronous launches, which run in order.
    let stats = unsafe {
        let pre = emu::launch(
            launch.pre.kernel,
            &launch.pre.dims,
            &launch.pre.params,
            options,
        )?;
        let dkv = match &launch.dkv {
            DkvLaunch::Sm80(l) => emu::launch(l.kernel, &l.dims, &l.params, options)?,
            DkvLaunch::Sm90a(l) => emu::launch(l.kernel, &l.dims, &l.params, options)?,
        };
        let dq = match &launch.dq {
            DqLaunch::Sm80(l) => emu::launch(l.kernel, &l.dims, &l.params, options)?,
            DqLaunch::Sm90a(l) => emu::launch(l.kernel, &l.dims, &l.params, options)?,
        };
        add(add(pre, dkv), dq)
    };
    for (name, buf) in [
        ("workspace lse_log2", &lse_log2),
        ("workspace delta", &delta),
    ] {
        buf.check_guards(name).map_err(|detail| Error::Emulator {
            kernel: launch.pre.kernel.name(),
            detail,
        })?;
    }
    Ok(stats)
}
