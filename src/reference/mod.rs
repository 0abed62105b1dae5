//! The f64 reference attention: the oracle every kernel is tested against.
//!
//! It reads the dense layouts of [`crate::AttnShape`] in f32, f64, bf16 or f16 ([`Element`]),
//! widens every value to f64 exactly and computes in f64 with the crate's one mask rule
//! (query `i` sees key `j` iff `j <= i && i < vis_end[j]`). Built for tests: rows of up to a
//! few hundred tokens, a few heads, head dims up to 128. It keeps per row only the lists of
//! visible (query, key) pairs, never a dense `n x n` mask, and spreads (row, head) units over
//! threads without changing any result.
//!
//! A query that sees no key has `O = 0`, LSE `-inf`, `dQ = 0`, and adds nothing to `dK`/`dV`.
//!
//! Results are deterministic. Per query, sums run over its keys in ascending order, so a query
//! that sees the same key values in the same order in two calls (a completion in a shared row
//! and alone in its own row) gets bit-identical `O`, LSE and `dQ`. `dK`/`dV` sum over the
//! queries of a row, so comparing them across different row layouts needs a tolerance.
//!
//! Beside attention: the SwiGLU MLP ([`swiglu_mlp`], [`swiglu`]) and the rotary embedding
//! ([`rotary`]), in f64, for the CPU path and the layer kernels.
//!
//! [`rel_l2_error`] and [`max_abs_error`] compare a result with the reference; see [`compare`]
//! for how they treat NaN and infinities.

pub mod compare;
mod element;
mod inputs;
mod parallel;
mod visible;

mod backward;
mod forward;
mod mlp;
mod rotary;

pub use backward::{backward, BackwardOut};
pub use compare::{max_abs_error, rel_l2_error};
pub use element::Element;
pub use forward::{forward, ForwardOut};
pub use mlp::{swiglu, swiglu_mlp};
pub use rotary::rotary;
