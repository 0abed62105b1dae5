//! Attention under the `vis_end` rule on the embedded kernels.
//!
//! - [`Plan`](crate::plan::Plan): built once per batch, reused by every layer.
//! - [`View`]: strided `[rows, n, heads, head_dim]` tensors (device or host).
//! - [`Forward`]: the forward kernels on a device; [`forward_emulated`] runs the same kernels,
//!   prepared by the same code, on the CPU emulator.
//! - [`configs`]: which registered kernel (code path, tile configuration) a call runs, from one
//!   table of picks; [`KernelChoice`] overrides it.

pub mod configs;
mod dtype;
mod emulated;
mod forward;
mod prepare;
mod view;

pub use configs::KernelChoice;
pub use dtype::AttnDtype;
pub use emulated::{forward_emulated, forward_emulated_with, HostTensors};
pub use forward::{DeviceTensors, Forward};
pub use prepare::ForwardLaunch;
pub use view::{Strides, View};

/// docs/forward.md, compiled and run as doc tests (the GPU example is compile-only).
#[cfg(doctest)]
#[doc = include_str!("../../docs/forward.md")]
pub struct ForwardGuide;
