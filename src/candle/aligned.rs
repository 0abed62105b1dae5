//! 16-byte aligned host buffers for the emulator's raw entry.
//!
//! The kernels move 16 bytes per access, so the raw entry refuses an element 0 that is not
//! 16-byte aligned. A candle `CpuStorage` is a `Vec<bf16>` (or `f16`, `f32`), which Rust only
//! aligns to its element (2 or 4 bytes): inputs whose address happens to be misaligned are copied
//! here, and outputs are always written here and then moved into the `Vec` candle keeps.

use half::{bf16, f16};

/// The unit of storage: 16 bytes at a 16-byte aligned address.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Chunk([u8; 16]);

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
    impl Sealed for f32 {}
}

/// Element types a chunk may be viewed as: plain numbers of 2 or 4 bytes, every bit pattern a
/// value, no padding, alignment dividing 16 (what makes the casts below sound).
pub(crate) trait Plain: sealed::Sealed + Copy + Default + 'static {}
impl Plain for bf16 {}
impl Plain for f16 {}
impl Plain for f32 {}

/// `len` elements of `T`, element 0 at a 16-byte aligned address.
pub(crate) struct AlignedBuf<T: Plain> {
    chunks: Vec<Chunk>,
    len: usize,
    _elem: std::marker::PhantomData<T>,
}

impl<T: Plain> AlignedBuf<T> {
    /// `len` copies of `value`.
    pub(crate) fn filled(len: usize, value: T) -> Self {
        let per_chunk = 16 / std::mem::size_of::<T>();
        let mut b = AlignedBuf {
            chunks: vec![Chunk([0; 16]); len.div_ceil(per_chunk)],
            len,
            _elem: std::marker::PhantomData,
        };
        b.as_mut_slice().fill(value);
        b
    }

    /// A copy of `src`.
    pub(crate) fn from_slice(src: &[T]) -> Self {
        let mut b = Self::filled(src.len(), T::default());
        b.as_mut_slice().copy_from_slice(src);
        b
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: the chunks hold at least `len` elements of T (16 is a multiple of its size), are
        // aligned for it (16 is a multiple of its alignment), and every bit pattern is a T (Plain).
        unsafe { std::slice::from_raw_parts(self.chunks.as_ptr().cast::<T>(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.chunks.as_mut_ptr().cast::<T>(), self.len) }
    }

    /// The address of element 0, as the raw entry takes it.
    pub(crate) fn addr(&self) -> u64 {
        self.chunks.as_ptr() as usize as u64
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_zero_is_16_byte_aligned_and_values_round_trip() {
        for len in [0usize, 1, 7, 8, 9, 100] {
            let src: Vec<bf16> = (0..len).map(|i| bf16::from_f32(i as f32)).collect();
            let b = AlignedBuf::from_slice(&src);
            assert_eq!(b.addr() % 16, 0);
            assert_eq!(b.as_slice(), &src[..]);
            assert_eq!(b.len(), len);
            let f = AlignedBuf::filled(len, f32::NAN);
            assert!(f.as_slice().iter().all(|x| x.is_nan()));
        }
    }
}
