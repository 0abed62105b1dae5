//! The documented error bounds of the attention kernels, so results are checked the way the
//! crate's tests check them: against the f64 [`reference`](crate::reference) on the same inputs,
//! within bounds derived from the arithmetic the kernels do (docs/forward.md and docs/backward.md,
//! "Error bounds", give the derivations).
//!
//! - Forward ([`ForwardBounds`]): a bound per element of O and of LSE. It depends on the inputs,
//!   the element type, the tile of the block lists the kernel walked (how many k tiles, how wide)
//!   and the rounding model of the tensor-core products ([`Arith`]: the emulator's, or the PTX
//!   ISA's latitude on a device); [`ForwardRun`] collects those three, from the kernel that ran
//!   ([`ForwardRun::device`], [`ForwardRun::emulated`]) or given by hand.
//! - Backward ([`BackwardBounds`]): a bound on the Frobenius norm of each gradient's error
//!   (independent roundings add in quadrature over the many terms of a norm), widened by the
//!   error of the LSE the forward handed over, which must itself stay within what the
//!   first-order bound assumes ([`BackwardBounds::forward_lse_error`]).
//! - Checks: [`ForwardBounds::check`] and [`BackwardBounds::check`] return how close the outputs
//!   came ([`ForwardSummary`], [`BackwardSummary`]) or the first [`Violation`] (what, where, got,
//!   want, bound). Exact values are required where the rule leaves nothing to compute: a query
//!   that sees no key has O = 0, LSE = -inf and dQ = 0, a key nobody sees dK = dV = 0; every
//!   other output element must be finite.
//! - [`figures`]: every constant the bounds use, with its source (unit roundoffs, the PTX ISA's
//!   maximum errors of `ex2.approx` and `lg2.approx`, the `mma` accumulation latitude).
//!
//! The bounds are computed in f64 from exact quantities of the inputs (scores, softmax weights,
//! magnitudes), in O(visible pairs * head_dim) per head like the reference, spread over the
//! machine's threads. Nothing in a bound is read off the kernel under test. Inputs are taken as
//! the reference takes them (dense, any [`Element`](crate::reference::Element) type), and must
//! be exactly values of the kernel's element type (the bounds are for the reference on exactly
//! what the kernel read): a bf16 run's inputs as bf16, or as f32 copies of those bf16 values.
//!
//! ```
//! use half::bf16;
//! use prefix_attn::attention::{forward_emulated, HostTensors, KernelChoice, View};
//! use prefix_attn::bounds::{Dtype, ForwardBounds, ForwardRun, Inputs};
//! use prefix_attn::emu::Schedule;
//! use prefix_attn::mask::VisEnd;
//! use prefix_attn::plan::Plan;
//! use prefix_attn::AttnShape;
//!
//! let shape = AttnShape { rows: 1, n: 8, q_heads: 4, kv_heads: 2, head_dim: 64 };
//! let plan = Plan::new(VisEnd::from_rows(&[vec![8, 8, 8, 8, 6, 6, 8, 8]])?)?;
//! let wave = |len: usize, f: f32| -> Vec<bf16> {
//!     (0..len).map(|i| bf16::from_f32((i as f32 * f).sin())).collect()
//! };
//! let (q, k, v) = (wave(shape.q_len(), 0.37), wave(shape.kv_len(), 0.71), wave(shape.kv_len(), 1.3));
//! let (mut o, mut lse) = (vec![bf16::ZERO; shape.q_len()], vec![0f32; shape.lse_len()]);
//! let scale = prefix_attn::Scale::from(0.125f32);
//! forward_emulated(&plan, &shape, HostTensors {
//!     q: View::dense(&q[..], &shape, 4), k: View::dense(&k[..], &shape, 2),
//!     v: View::dense(&v[..], &shape, 2), o: View::dense(&mut o[..], &shape, 4), lse: &mut lse[..],
//! }, scale, Schedule::Ascending)?;
//!
//! // The bounds of this call, for the kernel forward_emulated ran, and the check.
//! let inputs = Inputs { shape, vis_end: plan.vis_end(), q: &q, k: &k, v: &v, scale };
//! let run = ForwardRun::emulated(&KernelChoice::default(), Dtype::Bf16, shape.head_dim)?;
//! let bounds = ForwardBounds::new(inputs, run)?;
//! let summary = bounds.check(&o, &lse)?; // Err(Violation): the first element beyond its bound
//! println!("{summary}");
//!
//! // A wrong element is reported with where it is, what it is and what was wanted.
//! o[5] = bf16::from_f32(o[5].to_f32() + 0.5);
//! let violation = bounds.check(&o, &lse).unwrap_err();
//! assert_eq!(violation.at().map(|at| at.index), Some(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! On a device, `ForwardRun::device(forward.kernel_for(KernelDtype::Bf16, head_dim)?)` describes
//! the kernel [`attention::Forward`](crate::attention::Forward) ran. The backward's check takes
//! the forward's LSE (what the backward was given) and the three gradients:
//!
//! ```
//! # use half::bf16;
//! # use prefix_attn::attention::{backward_emulated, forward_emulated, HostBackwardTensors, HostTensors, View};
//! # use prefix_attn::emu::Schedule;
//! # use prefix_attn::mask::VisEnd;
//! # use prefix_attn::plan::Plan;
//! # use prefix_attn::AttnShape;
//! use prefix_attn::bounds::{BackwardBounds, Dtype, Gradients, Inputs};
//! # let shape = AttnShape { rows: 1, n: 8, q_heads: 2, kv_heads: 1, head_dim: 64 };
//! # let plan = Plan::new(VisEnd::from_rows(&[vec![8, 8, 8, 8, 6, 6, 8, 8]])?)?;
//! # let wave = |len: usize, f: f32| -> Vec<bf16> {
//! #     (0..len).map(|i| bf16::from_f32((i as f32 * f).sin())).collect()
//! # };
//! # let (q, k, v) = (wave(shape.q_len(), 0.37), wave(shape.kv_len(), 0.71), wave(shape.kv_len(), 1.3));
//! # let d_o = wave(shape.q_len(), 0.53);
//! # let (mut o, mut lse) = (vec![bf16::ZERO; shape.q_len()], vec![0f32; shape.lse_len()]);
//! # let scale = prefix_attn::Scale::from(0.125f32);
//! # forward_emulated(&plan, &shape, HostTensors {
//! #     q: View::dense(&q[..], &shape, 2), k: View::dense(&k[..], &shape, 1),
//! #     v: View::dense(&v[..], &shape, 1), o: View::dense(&mut o[..], &shape, 2), lse: &mut lse[..],
//! # }, scale, Schedule::Ascending)?;
//! # let (mut dq, mut dk, mut dv) =
//! #     (vec![bf16::ZERO; shape.q_len()], vec![bf16::ZERO; shape.kv_len()], vec![bf16::ZERO; shape.kv_len()]);
//! # backward_emulated(&plan, &shape, HostBackwardTensors {
//! #     q: View::dense(&q[..], &shape, 2), k: View::dense(&k[..], &shape, 1),
//! #     v: View::dense(&v[..], &shape, 1), o: View::dense(&o[..], &shape, 2), lse: &lse[..],
//! #     d_o: View::dense(&d_o[..], &shape, 2), dq: View::dense(&mut dq[..], &shape, 2),
//! #     dk: View::dense(&mut dk[..], &shape, 1), dv: View::dense(&mut dv[..], &shape, 1),
//! # }, scale, Schedule::Ascending)?;
//! // ... the forward wrote o and lse, the backward dq, dk and dv from d_o ...
//! let inputs = Inputs { shape, vis_end: plan.vis_end(), q: &q, k: &k, v: &v, scale };
//! let bounds = BackwardBounds::new(inputs, &d_o, Dtype::Bf16)?;
//! let summary = bounds.check(&lse, Gradients { dq: &dq, dk: &dk, dv: &dv })?;
//! println!("{summary}"); // dQ 1.2e-3 (bound 2.3e-2), ...
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backward;
mod check;
pub mod figures;
mod forward;
mod gain;
mod inputs;
mod parallel;

#[cfg(test)]
mod tests;

pub use backward::{BackwardBounds, Grad, LseError};
pub use check::{
    At, BackwardSummary, ForwardSummary, GradMargin, Gradients, Margin, Output, Violation,
};
pub use figures::{Arith, Dtype};
pub use forward::ForwardBounds;
pub use gain::d_o_gain;
pub use inputs::{ForwardRun, Inputs};
