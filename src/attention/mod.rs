//! Attention under the `vis_end` rule on the embedded kernels.
//!
//! - [`Plan`](crate::plan::Plan): built once per batch, reused by every layer.
//! - [`View`]: strided `[rows, n, heads, head_dim]` tensors (device or host).
//! - [`Forward`]: the forward kernels on a device; [`forward_emulated`] runs the same kernels,
//!   prepared by the same code, on the CPU emulator.

mod dtype;
mod emulated;
mod forward;
pub(crate) mod kernels;
mod prepare;
mod view;

pub use dtype::AttnDtype;
pub use emulated::{forward_emulated, HostTensors};
pub use forward::{DeviceTensors, Forward};
pub use prepare::{forward_smem_bytes, ForwardKernel, ForwardLaunch, SUPPORTED_HEAD_DIMS};
pub use view::{Strides, View};

/// docs/forward.md, compiled and run as doc tests (the GPU example is compile-only).
#[cfg(doctest)]
#[doc = include_str!("../../docs/forward.md")]
pub struct ForwardGuide;
