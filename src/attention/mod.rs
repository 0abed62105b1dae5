//! Attention under the `vis_end` rule on the embedded kernels.
//!
//! - [`Plan`](crate::plan::Plan): built once per batch, reused by every layer.
//! - [`View`]: strided `[rows, n, heads, head_dim]` tensors (device or host).
//! - [`Forward`]: the forward kernels on a device; [`forward_emulated`] runs the same kernels,
//!   prepared by the same code, on the CPU emulator.
//! - [`Backward`]: dQ, dK and dV on a device (deterministic, no atomics), with a reusable
//!   [`BackwardWorkspace`]; [`backward_emulated`] is the same on the emulator. docs/backward.md.
//! - [`Attention`]: both, for a trainer's layers.
//! - [`raw`]: the same calls on memory given by address (PyTorch, candle, any allocator) and a
//!   borrowed stream, or host addresses on the emulator: `unsafe`, with every check of the safe
//!   calls and a written safety contract.
//! - [`configs`]: which registered kernels (code path, tile configuration) a call runs, from one
//!   table of picks; [`KernelChoice`] and [`BackwardChoice`] override it.

mod backward;
mod backward_emulated;
mod backward_prepare;
mod call;
mod checks;
pub mod configs;
mod dtype;
mod emulated;
mod exec;
mod forward;
mod layer;
mod overlap;
mod path_kernel;
mod prepare;
mod prepare_sm90;
pub mod raw;
mod tensors;
mod view;
pub mod workspace;

pub use backward::{Backward, BackwardTensors};
pub use backward_emulated::{
    backward_emulated, backward_emulated_raw, backward_emulated_with, HostBackwardTensors,
};
pub use backward_prepare::{BackwardLaunch, DkvLaunch, DqLaunch, PreparedLaunch};
pub use configs::{BackwardChoice, BackwardKernels, KernelChoice};
pub use dtype::{AttnDtype, Dtype};
pub use emulated::{forward_emulated, forward_emulated_raw, forward_emulated_with, HostTensors};
pub use forward::{DeviceTensors, Forward};
pub use layer::{Attention, ForwardOutput, Gradients};
pub use prepare::ForwardLaunch;
pub use prepare_sm90::ForwardSm90Launch;
pub use raw::{RawBackward, RawBuffer, RawForward, RawTensor, RawWorkspace};
pub use tensors::{BackwardViews, Buffer, ForwardViews};
pub use view::{Strides, View};
pub use workspace::BackwardWorkspace;

/// docs/forward.md, compiled and run as doc tests (the GPU example is compile-only).
#[cfg(doctest)]
#[doc = include_str!("../../docs/forward.md")]
pub struct ForwardGuide;

/// docs/backward.md, compiled and run as doc tests (the GPU example is compile-only).
#[cfg(doctest)]
#[doc = include_str!("../../docs/backward.md")]
pub struct BackwardGuide;
