//! candle layouts as the kernels read them.
//!
//! A candle tensor is a storage plus a [`Layout`]: shape, element strides and a start offset. The
//! kernels read `[rows, n, heads, head_dim]` views with any row, token and head strides, provided
//! the head dim is contiguous and every access is 16-byte aligned: strides and the start offset
//! multiples of 8 elements (2-byte elements). Q, K and V narrowed from a fused QKV tensor
//! `[rows, n, (q_heads + 2 kv_heads) * d]` and reshaped, or transposed views, are such views and
//! run without a copy; anything else (a broadcast head dim, an odd offset) is copied once by
//! [`super::attention`] with candle's own (differentiable) `force_contiguous`.

use candle_core::Layout;

use crate::attention::Strides;

/// Where a `[rows, n, heads, head_dim]` tensor is in its storage, as the kernels take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelView {
    /// Element (0, 0, 0, 0), in elements from the storage's start.
    pub(crate) offset: usize,
    pub(crate) strides: Strides,
    /// Elements from `offset` up to and including the last one the view reaches.
    pub(crate) span: usize,
}

/// Elements per 16 bytes of a 2-byte element.
const ALIGN_ELEMS: usize = 8;

/// `layout` as a kernel view, or None when the kernels cannot read it in place: not rank 4, the
/// last dim not contiguous, a stride or the start offset not a multiple of 8 elements, or a
/// span that overflows. A dim of size 1 never moves, so its stride does not matter: it is given
/// to the kernels as 0. (A stride of 0 on a larger dim, i.e. a broadcast, is read correctly:
/// the kernels only read inputs through their strides.)
pub(crate) fn kernel_view(layout: &Layout) -> Option<KernelView> {
    let (dims, stride) = (layout.dims(), layout.stride());
    if dims.len() != 4 || stride.len() != 4 || dims.contains(&0) {
        return None;
    }
    if dims[3] > 1 && stride[3] != 1 {
        return None;
    }
    let mut s = [0usize; 3];
    let mut span = dims[3];
    for i in 0..3 {
        if dims[i] > 1 {
            if stride[i] % ALIGN_ELEMS != 0 {
                return None;
            }
            s[i] = stride[i];
            span = (dims[i] - 1).checked_mul(stride[i])?.checked_add(span)?;
        }
    }
    if layout.start_offset() % ALIGN_ELEMS != 0 {
        return None;
    }
    Some(KernelView {
        offset: layout.start_offset(),
        strides: Strides {
            row: s[0],
            token: s[1],
            head: s[2],
        },
        span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Shape;

    fn layout(dims: &[usize], stride: &[usize], offset: usize) -> Layout {
        Layout::new(Shape::from(dims.to_vec()), stride.to_vec(), offset)
    }

    #[test]
    fn dense_and_fused_qkv_views_are_read_in_place() {
        // Dense [2, 10, 4, 64].
        let v = kernel_view(&Layout::contiguous((2, 10, 4, 64))).unwrap();
        assert_eq!(v.strides, Strides::dense(10, 4, 64));
        assert_eq!((v.offset, v.span), (0, 2 * 10 * 4 * 64));
        // K of a fused [2, 10, (4 + 2 + 2) * 64] QKV: heads 4..6, offset 4 * 64.
        let token = 8 * 64;
        let v = kernel_view(&layout(
            &[2, 10, 2, 64],
            &[10 * token, token, 64, 1],
            4 * 64,
        ))
        .unwrap();
        assert_eq!(v.offset, 256);
        assert_eq!(v.span, 10 * token + 9 * token + 64 + 64);
    }

    #[test]
    fn unaligned_or_non_contiguous_views_are_refused() {
        let dense = [10 * 4 * 64, 4 * 64, 64, 1];
        // Offset of 4 elements (8 bytes).
        assert!(kernel_view(&layout(&[2, 10, 4, 64], &dense, 4)).is_none());
        // Head dim not contiguous (a transposed last dim).
        assert!(kernel_view(&layout(&[2, 10, 4, 64], &[2560, 256, 1, 4], 0)).is_none());
        // Head stride of 68 elements.
        assert!(kernel_view(&layout(&[2, 10, 4, 64], &[2720, 272, 68, 1], 0)).is_none());
        // Not rank 4; strides not one per dim.
        assert!(kernel_view(&Layout::contiguous((20, 4, 64))).is_none());
        assert!(kernel_view(&layout(&[2, 10, 4, 64], &[2560, 256, 64], 0)).is_none());
    }

    #[test]
    fn size_one_dims_and_broadcasts() {
        // One row with an odd row stride: the stride never moves, so it is 0.
        let v = kernel_view(&layout(&[1, 10, 4, 64], &[7, 256, 64, 1], 0)).unwrap();
        assert_eq!(v.strides.row, 0);
        // K broadcast over rows (stride 0): read in place.
        let v = kernel_view(&layout(&[3, 10, 2, 64], &[0, 128, 64, 1], 0)).unwrap();
        assert_eq!(v.span, 9 * 128 + 64 + 64);
    }
}
