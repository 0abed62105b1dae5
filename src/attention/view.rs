//! Strided tensor views `[rows, n, heads, head_dim]` with a contiguous last dimension, over device
//! memory (`cudarc` views) or host slices (the emulator). Strides are in elements, so a trainer
//! can pass Q, K and V as slices of one fused QKV buffer without copying.

use crate::error::{Error, Result};
use crate::ffi::params::PaStrides;
use crate::shape::AttnShape;

/// Element strides of the row, token and head dimensions (head_dim is contiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Strides {
    pub row: usize,
    pub token: usize,
    pub head: usize,
}

impl Strides {
    /// The dense layout `[rows, n, heads, head_dim]`.
    pub fn dense(n: usize, heads: usize, head_dim: usize) -> Self {
        Self {
            row: n * heads * head_dim,
            token: heads * head_dim,
            head: head_dim,
        }
    }
}

/// A tensor view: `data` (a `CudaView`, `CudaViewMut`, `&[T]` or `&mut [T]`) whose element 0 is
/// element (0, 0, 0, 0) of the tensor, and its strides.
#[derive(Debug)]
pub struct View<D> {
    pub data: D,
    pub strides: Strides,
}

impl<D> View<D> {
    pub fn new(data: D, strides: Strides) -> Self {
        Self { data, strides }
    }

    /// A dense `[rows, n, heads, head_dim]` view of `shape` with `heads` heads.
    pub fn dense(data: D, shape: &AttnShape, heads: usize) -> Self {
        Self::new(data, Strides::dense(shape.n, heads, shape.head_dim))
    }
}

/// Facts about one view the launch preparation checks: its length in elements, the address of
/// element 0 (device or host) and its strides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawView {
    pub(crate) len: usize,
    pub(crate) addr: u64,
    pub(crate) strides: Strides,
}

/// A dense `[rows, n, heads, head_dim]` buffer has exactly `rows * n * heads * head_dim`
/// elements; a whole number of heads other than `heads` is [`Error::WrongHeadCount`].
pub(crate) fn check_dense_len(
    what: &'static str,
    len: usize,
    shape: &AttnShape,
    heads: usize,
) -> Result<()> {
    let per_head = shape.rows as u128 * shape.n as u128 * shape.head_dim as u128;
    let want = per_head * heads as u128;
    if len as u128 == want {
        return Ok(());
    }
    if per_head > 0 && len as u128 % per_head == 0 {
        return Err(Error::WrongHeadCount {
            what,
            expected: heads,
            found: (len as u128 / per_head) as usize,
        });
    }
    Err(Error::LengthMismatch {
        what,
        expected: want.min(usize::MAX as u128) as usize,
        got: len,
    })
}

/// A view that does not fit its buffer because its head count is wrong, not its strides: dense
/// strides of the shape's `heads` over a buffer holding a whole other number of heads, or dense
/// strides of another head count over a buffer holding exactly the shape's (K or V described
/// with `q_heads`).
fn head_count_mistake(
    what: &'static str,
    view: &RawView,
    shape: &AttnShape,
    heads: usize,
) -> Option<Error> {
    let d = shape.head_dim;
    let s = view.strides;
    if d == 0 || s.head != d || s.token % d != 0 {
        return None;
    }
    let laid_out = s.token / d;
    // Dense for `laid_out` heads: the row stride is n token strides. Compared in u128, since the
    // strides come from the caller and `Strides::dense` of them could overflow.
    if s.row as u128 != shape.n as u128 * s.token as u128 {
        return None;
    }
    let per_head = shape.rows as u128 * shape.n as u128 * d as u128;
    let len = view.len as u128;
    let found = if laid_out == heads && len % per_head == 0 {
        (len / per_head) as usize
    } else if laid_out != heads && len == per_head * heads as u128 {
        laid_out
    } else {
        return None;
    };
    (found != heads).then_some(Error::WrongHeadCount {
        what,
        expected: heads,
        found,
    })
}

/// Bytes every kernel access is aligned to (cp.async and the O stores move 16 bytes).
const ALIGN_BYTES: u64 = 16;

/// Checks one 2-byte-element view of `heads` heads against `shape` and returns its strides for
/// the kernel. `written` views must also not map two elements to one address (the kernel's
/// writes would race).
pub(crate) fn check_view(
    what: &'static str,
    view: &RawView,
    shape: &AttnShape,
    heads: usize,
    written: bool,
) -> Result<PaStrides> {
    let bad = |detail: String| Error::InvalidView { what, detail };
    let s = view.strides;
    if view.addr % ALIGN_BYTES != 0 {
        return Err(bad(format!(
            "element 0 is at address {:#x}, not 16-byte aligned",
            view.addr
        )));
    }
    let align_elems = (ALIGN_BYTES / 2) as usize;
    for (name, stride) in [("row", s.row), ("token", s.token), ("head", s.head)] {
        if stride % align_elems != 0 {
            return Err(bad(format!(
                "{name} stride {stride} is not a multiple of {align_elems} elements (16 bytes)"
            )));
        }
        if stride > i64::MAX as usize {
            return Err(bad(format!("{name} stride {stride} overflows int64")));
        }
    }
    let dims = [
        (shape.rows, s.row, "row"),
        (shape.n, s.token, "token"),
        (heads, s.head, "head"),
    ];
    let last: u128 = dims
        .iter()
        .map(|&(size, stride, _)| (size as u128 - 1) * stride as u128)
        .sum::<u128>()
        + shape.head_dim as u128;
    if last > view.len as u128 {
        // A dense layout for a whole other number of heads is a head-count mistake (K or V
        // described with q_heads), not a stride one: say so.
        if let Some(e) = head_count_mistake(what, view, shape, heads) {
            return Err(e);
        }
        return Err(bad(format!(
            "the view of shape [{}, {}, {heads}, {}] with strides (row {}, token {}, head {}) needs {last} elements, the buffer has {}",
            shape.rows, shape.n, shape.head_dim, s.row, s.token, s.head, view.len
        )));
    }
    if written {
        // Sufficient condition for distinct addresses: ordered by stride, each dimension steps
        // past everything the smaller ones span.
        // (A fixed-size array: the check runs inside every forward call, which allocates nothing.)
        let mut sorted = dims;
        sorted.sort_by_key(|d| d.1);
        let mut span = shape.head_dim as u128;
        for (size, stride, name) in sorted.into_iter().filter(|d| d.0 > 1) {
            if (stride as u128) < span {
                return Err(bad(format!(
                    "{name} stride {stride} is smaller than the {span} elements the inner dimensions span: elements would overlap"
                )));
            }
            span += (size as u128 - 1) * stride as u128;
        }
    }
    Ok(PaStrides {
        row: s.row as i64,
        token: s.token as i64,
        head: s.head as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> AttnShape {
        AttnShape {
            rows: 2,
            n: 10,
            q_heads: 4,
            kv_heads: 2,
            head_dim: 64,
        }
    }

    fn raw(len: usize, addr: u64, strides: Strides) -> RawView {
        RawView { len, addr, strides }
    }

    #[test]
    fn dense_views_pass_and_short_buffers_fail() {
        let sh = shape();
        let s = Strides::dense(sh.n, 4, 64);
        assert!(check_view("q", &raw(sh.q_len(), 256, s), &sh, 4, true).is_ok());
        let err = check_view("q", &raw(sh.q_len() - 1, 256, s), &sh, 4, true).unwrap_err();
        assert!(matches!(err, Error::InvalidView { what: "q", .. }), "{err}");
    }

    #[test]
    fn huge_strides_are_refused_not_overflowed() {
        // A head stride of head_dim and a token stride near usize::MAX / n: the head-count
        // diagnosis once built `Strides::dense` of them, whose product overflowed (found by the
        // `views` fuzz target, fuzz/regressions/views/).
        let sh = AttnShape { n: 4, ..shape() };
        let s = Strides {
            row: 0,
            token: 1 << 62,
            head: 64,
        };
        let err = check_view("q", &raw(sh.q_len(), 256, s), &sh, 4, false).unwrap_err();
        assert!(matches!(err, Error::InvalidView { what: "q", .. }), "{err}");
        let s = Strides {
            row: usize::MAX / 64 * 64,
            token: usize::MAX / 64 * 64,
            head: 64,
        };
        let err = check_view("q", &raw(sh.q_len(), 256, s), &sh, 4, false).unwrap_err();
        assert!(matches!(err, Error::InvalidView { what: "q", .. }), "{err}");
    }

    #[test]
    fn fused_qkv_slices_pass_as_inputs() {
        // [rows, n, 3, heads, d]: q at offset 0, k at heads*d, v at 2*heads*d.
        let sh = shape();
        let token = 3 * 4 * 64;
        let s = Strides {
            row: sh.n * token,
            token,
            head: 64,
        };
        let total = sh.rows * sh.n * token;
        for off in [0usize, 4 * 64, 8 * 64] {
            let v = raw(total - off, 256 + 2 * off as u64, s);
            assert!(check_view("k", &v, &sh, 4, false).is_ok());
        }
    }

    #[test]
    fn misaligned_base_or_stride_fails() {
        let sh = shape();
        let s = Strides::dense(sh.n, 4, 64);
        assert!(check_view("q", &raw(sh.q_len(), 258, s), &sh, 4, false).is_err());
        let odd = Strides {
            token: 4 * 64 + 4,
            ..s
        };
        assert!(check_view("q", &raw(10 * sh.q_len(), 256, odd), &sh, 4, false).is_err());
    }

    #[test]
    fn overlapping_outputs_fail_but_overlapping_inputs_pass() {
        let sh = shape();
        let s = Strides {
            row: 10 * 4 * 64,
            token: 4 * 64,
            head: 32, // heads overlap half of each other
        };
        assert!(check_view("k", &raw(sh.q_len(), 256, s), &sh, 4, false).is_ok());
        let err = check_view("o", &raw(sh.q_len(), 256, s), &sh, 4, true).unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
    }
}
