//! f32 matrix products for the CPU path's MLP and projections: `C = A B` with row-major
//! `A [m, k]`, `B [k, n]`, `C [m, n]`. Rows of C are split into blocks, one unit of work each;
//! inside a block, `k` is walked in panels so that the panel of B stays in cache while every row
//! of the block adds `a[i, p] * B[p, :]` (a contiguous axpy the compiler vectorises).

use super::pool::par_units;
use crate::error::{Error, Result};

/// Rows of C per unit of work.
const ROW_BLOCK: usize = 16;
/// Rows of B (columns of A) per cache panel.
const K_PANEL: usize = 128;

/// The shape of one product: `A [m, k] x B [k, n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

impl MatShape {
    /// FLOPs of the product (a multiply and an add per term).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }

    /// Checks the operand lengths (`LengthMismatch` naming `what`.a / .b).
    pub fn check(&self, what: &'static str, a: usize, b: usize) -> Result<()> {
        let want_a = self.m.checked_mul(self.k);
        let want_b = self.k.checked_mul(self.n);
        let out = self.m.checked_mul(self.n);
        let (Some(want_a), Some(want_b), Some(_)) = (want_a, want_b, out) else {
            return Err(Error::IndexOverflow {
                what,
                value: self.m as u128 * self.k as u128 * self.n as u128,
            });
        };
        for (want, got) in [(want_a, a), (want_b, b)] {
            if want != got {
                return Err(Error::LengthMismatch {
                    what,
                    expected: want,
                    got,
                });
            }
        }
        Ok(())
    }
}

/// `C = A B` on up to `threads` threads. Errors: operand lengths that do not match `shape`.
pub fn matmul(a: &[f32], b: &[f32], shape: MatShape, threads: usize) -> Result<Vec<f32>> {
    shape.check("matmul operands (A [m, k], B [k, n])", a.len(), b.len())?;
    let MatShape { m, k, n } = shape;
    let blocks = m.div_ceil(ROW_BLOCK);
    let parts = par_units(blocks, threads, |blk| {
        let rows = blk * ROW_BLOCK..((blk + 1) * ROW_BLOCK).min(m);
        let mut c = vec![0f32; rows.len() * n];
        for p0 in (0..k).step_by(K_PANEL) {
            let p1 = (p0 + K_PANEL).min(k);
            for (ci, i) in rows.clone().enumerate() {
                let c_row = &mut c[ci * n..(ci + 1) * n];
                for p in p0..p1 {
                    axpy(c_row, a[i * k + p], &b[p * n..(p + 1) * n]);
                }
            }
        }
        c
    });
    Ok(parts.concat())
}

/// `y += alpha * x`.
#[inline]
pub(crate) fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// `a . b` with eight partial sums, so the compiler can keep them in vector lanes (a single
/// running sum would force one add after the other).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_product_is_exact_on_integers() {
        // Integer-valued operands: every partial sum is exact in f32.
        let (m, k, n) = (37, 300, 5);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 3) % 7) as f32 - 3.0).collect();
        let c = matmul(&a, &b, MatShape { m, k, n }, 3).unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert_eq!(c[i * n + j], want, "({i}, {j})");
            }
        }
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let s = MatShape { m: 2, k: 3, n: 4 };
        assert!(matches!(
            matmul(&[0.0; 5], &[0.0; 12], s, 1),
            Err(Error::LengthMismatch {
                expected: 6,
                got: 5,
                ..
            })
        ));
        assert!(matches!(
            matmul(&[0.0; 6], &[0.0; 11], s, 1),
            Err(Error::LengthMismatch {
                expected: 12,
                got: 11,
                ..
            })
        ));
        assert_eq!(
            dot(&[1.0; 19], &[2.0; 19]),
            38.0,
            "dot with a remainder after the 8-lane chunks"
        );
    }
}
