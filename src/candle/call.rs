//! What one call of the op carries from the forward to the backward.

use candle_core::{DType, Layout, Storage};

use crate::plan::Plan;
use crate::scale::Scale;
use crate::shape::AttnShape;

/// The call's plan (a cheap clone sharing the batch's lists and device uploads), scale, shape
/// and dtype: everything but the tensors, the same for the forward and the backward.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) plan: Plan,
    pub(crate) scale: Scale,
    pub(crate) shape: AttnShape,
    /// BF16 or F16: the dtype of Q, K, V, O and the gradients.
    pub(crate) dtype: DType,
}

/// A tensor's storage under its read lock, and its layout.
pub(crate) struct Held<'a> {
    pub(crate) storage: &'a Storage,
    pub(crate) layout: &'a Layout,
}

/// What the backward reads besides Q, K and V: the forward's O and LSE, and dO.
pub(crate) struct Saved<'a> {
    pub(crate) o: Held<'a>,
    pub(crate) d_o: Held<'a>,
    pub(crate) lse: Held<'a>,
}
