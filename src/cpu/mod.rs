//! The CPU path: multi-threaded f32 implementations of what the bench times, so that a machine
//! without a GPU still shows what block skipping and prefix sharing save.
//!
//! - [`CpuAttention`]: tiled attention that walks the crate's block lists ([`crate::mask::BlockMask`])
//!   exactly as the kernels do: FULL tiles without per-element mask, PARTIAL tiles with the rule,
//!   EMPTY tiles never touched; forward ([`CpuAttention::forward`]) and backward
//!   ([`CpuAttention::backward`]).
//! - [`SwigluMlp`]: the SwiGLU MLP (gate, up, down).
//! - [`AttentionLayer`]: QKV projection, rotary embedding ([`apply_rotary`]) with the layout's
//!   position ids, attention, output projection.
//! - [`matmul`]: the threaded f32 GEMM under the MLP and projections.
//!
//! Everything is checked in `cargo test` against the f64 reference ([`crate::reference`]) with
//! tolerances derived from f32 rounding (tests/host/cpu_path.rs). Results do not depend on the thread
//! count. These are not the GPU kernels: their speed says nothing about the kernels' speed, only
//! how much work each format costs on a CPU.

mod attention;
mod attention_backward;
mod gemm;
mod layer;
mod mlp;
mod pool;
mod rotary;

pub use attention::{AttnOutput, CpuAttention};
pub use attention_backward::AttnGrads;
pub use gemm::{matmul, MatShape};
pub use layer::{AttentionLayer, LayerDims};
pub use mlp::{silu, SwigluMlp};
pub use pool::available_threads;
pub use rotary::apply_rotary;
