//! The backward tests' use of the crate's bounds (`prefix_attn::bounds`, docs/backward.md): the
//! bounds of a test call (its dtype from the element type), and the crate's check of the LSE the
//! backward was handed and of dQ, dK, dV turned into a test failure message.

use prefix_attn::bounds::{BackwardBounds, BackwardSummary, Dtype, Gradients, LseError};
use prefix_attn::reference::Element;

use crate::forward_support::check::{Inputs, KernelElem};

/// The reference gradients of `inp` with output gradient `d_o` and the magnitudes of their
/// bounds, for kernels computing in `T`.
pub fn bounds<T: KernelElem>(inp: &Inputs<T>, d_o: &[T]) -> BackwardBounds {
    BackwardBounds::new(inp.bounds(), d_o, Dtype::of::<T>())
        .unwrap_or_else(|e| panic!("backward bounds of a test case: {e}"))
}

/// The LSE the backward was given (the forward kernel's), then dQ, dK, dV (dense): every element
/// finite, exact zeros where a query sees no key (dQ) or a key is seen by nobody (dK, dV), each
/// gradient's error within its bound. Returns the errors and bounds, or the first failure.
pub fn check<T: Element>(
    label: &str,
    rf: &BackwardBounds,
    lse: &[f32],
    got: [&[T]; 3],
) -> Result<BackwardSummary, String> {
    let e = rf
        .forward_lse_error(lse)
        .map_err(|v| format!("{label}: {v}"))?;
    check_given(label, rf, e, got)
}

/// [`check`] of the gradients of a backward given an LSE with error `lse_error`.
pub fn check_given<T: Element>(
    label: &str,
    rf: &BackwardBounds,
    lse_error: LseError,
    got: [&[T]; 3],
) -> Result<BackwardSummary, String> {
    let [dq, dk, dv] = got;
    rf.check_given(lse_error, Gradients { dq, dk, dv })
        .map_err(|v| format!("{label}: {v}"))
}
