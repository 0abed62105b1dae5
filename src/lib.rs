//! prefix-attn: hand-written CUDA attention kernels for training on rows whose sequences share
//! prefixes (DPO pairs, GRPO groups, branching trees) and on packed documents.
//!
//! A trainer puts each prompt once and its completions after it in one row; one int32 per key,
//! `vis_end[j]`, says who may see it (query `i` sees key `j` iff `j <= i && i < vis_end[j]`), and
//! the kernels skip every tile that rule leaves fully masked. See the README for the picture.
//!
//! - [`mask`]: the rule, batches of rows ([`mask::VisEnd`]) and their block lists
//!   ([`mask::BlockMask`]).
//! - [`layout`]: row builders (documents, prompts with completions, trees, padding) and their
//!   unshared equivalents.
//! - [`reference`](mod@reference): the f64 oracle (forward and backward) every kernel is tested
//!   against.
//! - [`bounds`]: the kernels' derived error bounds against it; checks outputs as the tests do.
//! - [`batch`]: the batch builder for trainers (samples to rows, logits back to log-probs).
//! - [`plan`]: a batch's plan (vis_end + block lists, uploaded once), reused by every layer.
//! - [`scale`]: the softmax scale, one type for the kernels, the reference and the bounds.
//! - [`attention`]: the forward and backward kernels on a device ([`attention::Forward`],
//!   [`attention::Backward`], both in [`attention::Attention`]) or on the emulator
//!   ([`attention::forward_emulated`], [`attention::backward_emulated`]); docs/forward.md,
//!   docs/backward.md.
//! - [`registry`]: every kernel of the fatbin with its launch facts (name, block, shared memory,
//!   tile configuration), from the one kernel list in csrc/registry.cuh, then the test-only
//!   kernels of csrc/test_registry.cuh (emulator and test fatbin only).
//! - [`cpu`]: multi-threaded f32 attention (block-skipping), SwiGLU MLP and attention layer on the
//!   CPU: what `cargo bench` times without a GPU.
//! - [`ops`]: the SwiGLU and rotary kernels and cuBLAS GEMMs (an MLP and an attention layer).
//! - [`rotary`]: rotary position embedding tables (position ids from the layout).
//! - [`cuda`]: the embedded kernels and their launch on a device.
//! - [`emu`]: the SIMT emulator that runs the same kernels on the CPU (tests without a GPU).
//! - [`sm90`]: Hopper host support: tensor maps for TMA loads ([`sm90::TensorMapDesc`]).
//! - `candle` (the `candle` cargo feature): the forward and backward as a differentiable candle
//!   op, `prefix_attn::candle::attention(&q, &k, &v, &plan, scale)`.

pub mod attention;
pub mod batch;
pub mod bounds;
#[cfg(feature = "candle")]
pub mod candle;
pub mod cpu;
pub mod cuda;
pub mod emu;
pub mod error;
pub mod ffi;
pub mod launch;
pub mod layout;
pub mod mask;
pub mod ops;
pub mod plan;
pub mod reference;
pub mod registry;
pub mod rotary;
pub mod scale;
pub mod shape;
pub mod sm90;

// What a trainer needs, at the root: one `use prefix_attn::{...}` line.
pub use attention::{
    backward_emulated, forward_emulated, Attention, AttnDtype, Backward, BackwardTensors,
    BackwardWorkspace, DeviceTensors, Dtype, Forward, ForwardOutput, Gradients,
    HostBackwardTensors, HostTensors, Strides, View,
};
pub use batch::{Batch, BatchOptions, LogProbMap, Sample, TokenTree};
pub use cuda::Gpu;
/// The cudarc this crate is built on (its driver types appear in the device API).
pub use cudarc;
pub use emu::Schedule;
pub use error::{Error, Result};
/// The bf16/f16 host types the kernels take (the `half` crate, re-exported so a trainer needs no
/// second dependency of the same version).
pub use half::{self, bf16, f16};
pub use layout::RowBuilder;
pub use mask::VisEnd;
pub use plan::Plan;
pub use scale::Scale;
pub use shape::AttnShape;

/// The README's Rust examples, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// docs/internals.md's Rust examples, as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/internals.md")]
pub struct InternalsDoctests;
