//! Whether two strided views of one call can share an element: a written view (dQ, dK, dV) that
//! overlaps another view would race with, or corrupt, what a later kernel reads.
//!
//! The test is sufficient, not exact (exactness is an integer-programming question), and cheap
//! (no allocation, a few candidates). Two views are disjoint when
//! - their address ranges are disjoint, or
//! - for some period P (one of their strides), each view lies in one residue window modulo P and
//!   the two windows do not meet. A view lies in the window `[base mod P, base mod P + span)` when
//!   every stride at least P is a multiple of P and everything the smaller strides and the head
//!   dim span together is at most P. This accepts slices of one fused buffer:
//!   `[rows, n, heads, d]` token-major (P = the token stride; the views are different head
//!   ranges of each token) and `[rows, heads, n, d]` head-major (P = the row stride).

use crate::error::{Error, Result};
use crate::shape::AttnShape;

use super::view::RawView;

/// A view's addresses in bytes: element (0, 0, 0, 0), the (size, stride) of the row, token and
/// head dimensions, and the bytes of one head (contiguous).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Footprint {
    pub(crate) name: &'static str,
    base: u128,
    dims: [(u128, u128); 3],
    inner: u128,
}

impl Footprint {
    /// The footprint of a view of 2-byte elements with `heads` heads of `shape`.
    pub(crate) fn of(name: &'static str, v: &RawView, shape: &AttnShape, heads: usize) -> Self {
        let b = |elems: usize| elems as u128 * 2;
        Footprint {
            name,
            base: v.addr as u128,
            dims: [
                (shape.rows as u128, b(v.strides.row)),
                (shape.n as u128, b(v.strides.token)),
                (heads as u128, b(v.strides.head)),
            ],
            inner: b(shape.head_dim),
        }
    }

    /// Bytes from the first to one past the last element.
    fn span(&self) -> u128 {
        self.dims
            .iter()
            .map(|&(size, stride)| (size - 1) * stride)
            .sum::<u128>()
            + self.inner
    }

    /// The window length if the view lies in one residue window modulo `p`.
    fn window(&self, p: u128) -> Option<u128> {
        let mut inner_span = self.inner;
        for &(size, stride) in self.dims.iter().filter(|d| d.0 > 1) {
            if stride >= p {
                if stride % p != 0 {
                    return None;
                }
            } else {
                inner_span += (size - 1) * stride;
            }
        }
        (inner_span <= p).then_some(inner_span)
    }
}

/// Whether the test above proves `a` and `b` disjoint.
fn proven_disjoint(a: &Footprint, b: &Footprint) -> bool {
    if a.base + a.span() <= b.base || b.base + b.span() <= a.base {
        return true;
    }
    let candidates = a.dims.iter().chain(&b.dims).filter(|d| d.0 > 1 && d.1 > 0);
    candidates
        .map(|d| d.1)
        .any(|p| match (a.window(p), b.window(p)) {
            (Some(wa), Some(wb)) => {
                // b's window starts `gap` bytes after a's, around a circle of length p.
                let gap = (b.base % p + p - a.base % p) % p;
                gap >= wa && gap + wb <= p
            }
            _ => false,
        })
}

/// Every view in `written` is proven disjoint from every other view (written or read).
pub(crate) fn check_disjoint(written: &[Footprint], read: &[Footprint]) -> Result<()> {
    for (i, w) in written.iter().enumerate() {
        for other in written[i + 1..].iter().chain(read) {
            if !proven_disjoint(w, other) {
                return Err(Error::InvalidView {
                    what: w.name,
                    detail: format!(
                        "may share elements with {} (written views must not overlap any other \
                         view of the call: separate buffers, or head ranges of one fused buffer)",
                        other.name
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::Strides;

    fn shape() -> AttnShape {
        AttnShape {
            rows: 2,
            n: 10,
            q_heads: 4,
            kv_heads: 2,
            head_dim: 64,
        }
    }

    fn fp(name: &'static str, addr_elems: usize, strides: Strides, heads: usize) -> Footprint {
        let v = RawView {
            len: usize::MAX,
            addr: 4096 + 2 * addr_elems as u64,
            strides,
        };
        Footprint::of(name, &v, &shape(), heads)
    }

    #[test]
    fn separate_buffers_are_disjoint() {
        let sh = shape();
        let q = Strides::dense(sh.n, 4, 64);
        let kv = Strides::dense(sh.n, 2, 64);
        let dq = fp("dq", 0, q, 4);
        let dk = fp("dk", sh.q_len(), kv, 2);
        let dv = fp("dv", sh.q_len() + sh.kv_len(), kv, 2);
        assert!(check_disjoint(&[dq, dk, dv], &[]).is_ok());
        let dv_on_dk = fp("dv", sh.q_len() + sh.kv_len() - 64, kv, 2);
        let err = check_disjoint(&[dq, dk, dv_on_dk], &[]).unwrap_err();
        assert!(
            matches!(err, Error::InvalidView { what: "dk", .. }),
            "{err}"
        );
    }

    #[test]
    fn fused_token_major_slices_are_disjoint() {
        // [rows, n, 4 + 2 + 2 heads, d]: dq heads 0-3, dk 4-5, dv 6-7 of each token.
        let sh = shape();
        let token = 8 * 64;
        let s = Strides {
            row: sh.n * token,
            token,
            head: 64,
        };
        let (dq, dk, dv) = (
            fp("dq", 0, s, 4),
            fp("dk", 4 * 64, s, 2),
            fp("dv", 6 * 64, s, 2),
        );
        assert!(check_disjoint(&[dq, dk, dv], &[]).is_ok());
        // dk shifted one head down onto dq's last head.
        let err = check_disjoint(&[dq, fp("dk", 3 * 64, s, 2)], &[]).unwrap_err();
        assert!(err.to_string().contains("dq"), "{err}");
        // Half a head off: still overlapping.
        assert!(check_disjoint(&[dk, fp("dv", 5 * 64 + 32, s, 2)], &[]).is_err());
    }

    #[test]
    fn fused_head_major_slices_are_disjoint() {
        // [rows, 8 heads, n, d]: dq heads 0-3, dk 4-5, dv 6-7.
        let sh = shape();
        let head = sh.n * 64;
        let s = Strides {
            row: 8 * head,
            token: 64,
            head,
        };
        let (dq, dk, dv) = (
            fp("dq", 0, s, 4),
            fp("dk", 4 * head, s, 2),
            fp("dv", 6 * head, s, 2),
        );
        assert!(check_disjoint(&[dq, dk, dv], &[]).is_ok());
        assert!(check_disjoint(&[dq, fp("dk", 3 * head, s, 2)], &[]).is_err());
    }

    #[test]
    fn written_views_must_not_overlap_inputs() {
        let sh = shape();
        let q = Strides::dense(sh.n, 4, 64);
        let err = check_disjoint(&[fp("dq", 0, q, 4)], &[fp("q", 0, q, 4)]).unwrap_err();
        assert!(
            matches!(err, Error::InvalidView { what: "dq", ref detail } if detail.contains("q")),
            "{err}"
        );
        // Inputs may overlap each other (K and V from one buffer, or the same tensor twice).
        assert!(check_disjoint(
            &[fp("dq", sh.q_len(), q, 4)],
            &[fp("q", 0, q, 4), fp("o", 0, q, 4)]
        )
        .is_ok());
    }
}
