//! Host buffers with guard bytes on both sides: a kernel that writes past either end of a buffer
//! overwrites a guard, and [`GuardedBuf::check_guards`] (run after every launch by
//! [`super::check_schedules`]) names the buffer, the side and the offset.

use std::alloc::{alloc, dealloc, Layout};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Guard bytes before and after the data. 256 keeps the data 256-byte aligned (cp.async and
/// vector loads need 16) and catches overruns of a whole 128-element bf16 row of a tile.
const GUARD: usize = 256;
const ALIGN: usize = 256;

fn guard_byte(i: usize) -> u8 {
    // Position-dependent, so a kernel filling memory with one value cannot match it by chance.
    (0xa7 ^ i.wrapping_mul(13)) as u8
}

/// Plain element types a [`GuardedBuf`] may hold: every bit pattern is a valid value and there is
/// no padding, so buffers can be viewed as bytes and compared bit for bit.
///
/// # Safety
/// Implement only for types with those two properties.
pub unsafe trait Element: Copy + Debug + 'static {}

macro_rules! elements {
    ($($t:ty),*) => { $(unsafe impl Element for $t {})* };
}
elements!(
    u8,
    i8,
    u16,
    i16,
    u32,
    i32,
    u64,
    i64,
    f32,
    f64,
    half::bf16,
    half::f16
);

/// A host buffer of `T` with guard bytes on both sides, at a fixed address for its lifetime (so
/// parameter structs can hold its pointer across several launches).
pub struct GuardedBuf<T: Element> {
    base: NonNull<u8>,
    len: usize,
    layout: Layout,
    _t: PhantomData<T>,
}

// SAFETY: owns its allocation like a Vec<T>.
unsafe impl<T: Element + Send> Send for GuardedBuf<T> {}
unsafe impl<T: Element + Sync> Sync for GuardedBuf<T> {}

impl<T: Element> GuardedBuf<T> {
    /// A buffer holding a copy of `data`.
    pub fn from_slice(data: &[T]) -> Self {
        let buf = Self::alloc(data.len());
        // SAFETY: the data area holds data.len() elements and does not overlap `data`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf.as_mut_ptr(), data.len()) };
        buf
    }

    /// A buffer of `len` copies of `value` (a poison pattern, typically).
    pub fn filled(len: usize, value: T) -> Self {
        let buf = Self::alloc(len);
        // SAFETY: the data area holds len elements.
        unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr(), len).fill(value) };
        buf
    }

    fn alloc(len: usize) -> Self {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .and_then(|b| b.checked_add(2 * GUARD))
            .expect("buffer size overflows usize");
        let layout = Layout::from_size_align(bytes, ALIGN).expect("valid layout");
        // SAFETY: layout has a non-zero size (2 * GUARD at least).
        let base = NonNull::new(unsafe { alloc(layout) })
            .unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        let buf = Self {
            base,
            len,
            layout,
            _t: PhantomData,
        };
        let data_bytes = buf.byte_len();
        for i in 0..GUARD {
            // SAFETY: both guards lie inside the allocation.
            unsafe {
                *base.as_ptr().add(i) = guard_byte(i);
                *base.as_ptr().add(GUARD + data_bytes + i) = guard_byte(i);
            }
        }
        buf
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn byte_len(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }

    /// The first element, for a kernel's parameter struct. Stable for the buffer's lifetime.
    pub fn as_ptr(&self) -> *const T {
        self.as_mut_ptr()
    }

    /// The first element, for a kernel's parameter struct (writable). Stable for the buffer's
    /// lifetime; the memory is owned through a raw pointer, so handing it out from `&self` lets
    /// one struct hold the pointers of several buffers while they are checked between launches.
    pub fn as_mut_ptr(&self) -> *mut T {
        // SAFETY: GUARD is inside the allocation.
        unsafe { self.base.as_ptr().add(GUARD) as *mut T }
    }

    /// The elements (do not hold this across a launch that writes the buffer).
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: the data area holds len initialised elements of a plain type.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The elements, writable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as above, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }

    /// A copy of the elements.
    pub fn to_vec(&self) -> Vec<T> {
        self.as_slice().to_vec()
    }

    /// The data as bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: plain elements without padding (Element's contract).
        unsafe { std::slice::from_raw_parts(self.as_ptr() as *const u8, self.byte_len()) }
    }

    /// Overwrites the data with `bytes` (same length).
    pub(crate) fn set_bytes(&self, bytes: &[u8]) {
        assert_eq!(bytes.len(), self.byte_len(), "set_bytes length");
        // SAFETY: same length, no overlap with a caller's slice of ours is alive by contract.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.as_mut_ptr() as *mut u8, bytes.len())
        };
    }

    /// `Err` describing the first overwritten guard byte on each side (the one closest to the
    /// data), or `Ok` when both guards are intact.
    pub fn check_guards(&self, name: &str) -> Result<(), String> {
        let data_bytes = self.byte_len();
        let esize = std::mem::size_of::<T>();
        // SAFETY: the guards lie inside the allocation.
        let before = unsafe { std::slice::from_raw_parts(self.base.as_ptr(), GUARD) };
        let after = unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(GUARD + data_bytes), GUARD)
        };
        if let Some(i) = (0..GUARD).rev().find(|&i| before[i] != guard_byte(i)) {
            let back = GUARD - i;
            return Err(format!(
                "buffer `{name}`: write {back} bytes before its start (element {}) overwrote the guard",
                -(back.div_ceil(esize) as i64)
            ));
        }
        if let Some(i) = (0..GUARD).find(|&i| after[i] != guard_byte(i)) {
            return Err(format!(
                "buffer `{name}` of {} elements: write at byte {} (element {}) past its end overwrote the guard",
                self.len,
                data_bytes + i,
                self.len + i / esize
            ));
        }
        Ok(())
    }
}

impl<T: Element> Drop for GuardedBuf<T> {
    fn drop(&mut self) {
        // SAFETY: allocated in `alloc` with this layout.
        unsafe { dealloc(self.base.as_ptr(), self.layout) };
    }
}

impl<T: Element> Debug for GuardedBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedBuf")
            .field("len", &self.len)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_catch_writes_on_both_sides() {
        let b = GuardedBuf::<u32>::filled(10, 7);
        assert!(b.check_guards("b").is_ok());
        assert_eq!(b.as_ptr() as usize % ALIGN, 0);
        // SAFETY: element 10 is the first guard word after the data, inside the allocation.
        unsafe { *b.as_mut_ptr().add(10) = 0 };
        let e = b.check_guards("b").unwrap_err();
        assert!(e.contains("element 10"), "{e}");

        let c = GuardedBuf::<u16>::from_slice(&[1, 2, 3]);
        // SAFETY: element -1 lies in the guard before the data.
        unsafe { *c.as_mut_ptr().sub(1) = 0 };
        let e = c.check_guards("c").unwrap_err();
        assert!(e.contains("before its start (element -1)"), "{e}");
        assert_eq!(c.to_vec(), vec![1, 2, 3]);
    }
}
