//! Fuzz bytes to sizes and choices. Every read succeeds: once the bytes run out, each read
//! gives its smallest value, so any input decodes to some (small) case.

use libfuzzer_sys::arbitrary::Unstructured;

pub struct Input<'a>(Unstructured<'a>);

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self(Unstructured::new(data))
    }

    /// A byte (0 once the input is spent).
    pub fn byte(&mut self) -> u8 {
        self.0.arbitrary().unwrap_or(0)
    }

    /// A value in `lo..=hi`.
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        self.0.int_in_range(lo..=hi).unwrap_or(lo)
    }

    /// A value in `lo..=hi`.
    pub fn int_i64(&mut self, lo: i64, hi: i64) -> i64 {
        self.0.int_in_range(lo..=hi).unwrap_or(lo)
    }

    /// True with probability `num / 256` (false once the input is spent).
    pub fn chance(&mut self, num: u8) -> bool {
        !self.0.is_empty() && self.byte() < num
    }

    /// One of `xs` (the first once the input is spent).
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.int(0, xs.len() - 1)]
    }

    /// A whole-word value (0 once the input is spent).
    pub fn u64(&mut self) -> u64 {
        self.0.arbitrary().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
