//! Validation of a reference call and its inputs widened to f64, with per-head gathering.

use crate::error::{Error, Result};
use crate::mask::VisEnd;
use crate::reference::element::Element;
use crate::shape::AttnShape;

/// Checks the shape, that `vis_end` describes the same rows, and the scale.
pub(crate) fn validate_call(shape: &AttnShape, vis_end: &VisEnd, scale: f64) -> Result<()> {
    shape.validate()?;
    if vis_end.n() != shape.n {
        return Err(Error::LengthMismatch {
            what: "vis_end row length (shape.n)",
            expected: shape.n,
            got: vis_end.n(),
        });
    }
    if vis_end.rows() != shape.rows {
        return Err(Error::LengthMismatch {
            what: "vis_end rows (shape.rows)",
            expected: shape.rows,
            got: vis_end.rows(),
        });
    }
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::InvalidArgument {
            what: "scale",
            detail: format!("{scale} is not a finite positive number"),
        });
    }
    Ok(())
}

/// A dense `[rows, n, heads, d]` tensor widened to f64, after its length was checked.
pub(crate) struct Dense {
    data: Vec<f64>,
    n: usize,
    heads: usize,
    d: usize,
}

impl Dense {
    /// Checks `src.len() == rows * n * heads * d` (naming `what` otherwise) and widens it.
    pub(crate) fn new<T: Element>(
        what: &'static str,
        src: &[T],
        shape: &AttnShape,
        heads: usize,
    ) -> Result<Self> {
        let expected = shape.rows * shape.n * heads * shape.head_dim;
        if src.len() != expected {
            return Err(Error::LengthMismatch {
                what,
                expected,
                got: src.len(),
            });
        }
        Ok(Self {
            data: src.iter().map(|x| x.to_f64()).collect(),
            n: shape.n,
            heads,
            d: shape.head_dim,
        })
    }

    /// Head `h` of row `r` as a contiguous `[n, d]` matrix (token-major), so the inner loops
    /// read consecutive memory.
    pub(crate) fn head(&self, r: usize, h: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.n * self.d);
        for i in 0..self.n {
            let at = ((r * self.n + i) * self.heads + h) * self.d;
            out.extend_from_slice(&self.data[at..at + self.d]);
        }
        out
    }
}

/// Writes a contiguous `[n, d]` head back into a dense `[rows, n, heads, d]` tensor, adding to
/// what is there (so GQA heads sharing a kv head sum, in the order the caller adds them).
pub(crate) fn add_head(
    dst: &mut [f64],
    src: &[f64],
    shape: &AttnShape,
    heads: usize,
    r: usize,
    h: usize,
) {
    let (n, d) = (shape.n, shape.head_dim);
    for i in 0..n {
        let at = ((r * n + i) * heads + h) * d;
        for (o, s) in dst[at..at + d].iter_mut().zip(&src[i * d..(i + 1) * d]) {
            *o += s;
        }
    }
}
