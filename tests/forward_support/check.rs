//! Seeded inputs and the comparison of a kernel's O and LSE with the f64 reference.
//!
//! Every element is held to its own bound, derived from the kernel's arithmetic
//! (tests/forward_support/bounds.rs; docs/forward.md, "Error bounds"): on the emulator with its
//! `mma` rounding, on a device with the PTX ISA's latitude for `mma`; both with the documented
//! error of ex2.approx / lg2.approx (which the emulator models). Queries that see no key: O
//! exactly 0 and LSE exactly -inf; everywhere else both finite.

use half::{bf16, f16};
use prefix_attn::mask::{TileShape, VisEnd};
use prefix_attn::reference::{self, Element, ForwardOut};
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::bounds::{tolerances, Arith, Tolerances};
use super::cases::{Case, Dtype};

/// Bit patterns used to poison outputs before a launch: NaN in bf16/f16, NaN in f32.
pub const POISON_U16: u16 = 0x7fff;
pub const POISON_F32: f32 = f32::NAN;

/// The element types the kernels take, with their poison value and bit pattern (guards compare
/// bits: a NaN the kernel wrote is not the poison).
pub trait KernelElem: Element + prefix_attn::attention::AttnDtype {
    fn poison() -> Self;
    fn bits(self) -> u16;
}

impl KernelElem for bf16 {
    fn poison() -> Self {
        bf16::from_bits(POISON_U16)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

impl KernelElem for f16 {
    fn poison() -> Self {
        f16::from_bits(POISON_U16)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

/// Dense inputs of one case, already rounded to `T`.
pub struct Inputs<T> {
    pub shape: AttnShape,
    pub vis_end: VisEnd,
    pub q: Vec<T>,
    pub k: Vec<T>,
    pub v: Vec<T>,
    pub scale: f32,
}

/// `len` values uniform in [-amp, amp), seeded, rounded to `T` (never all zeros).
pub fn random_vec<T: Element>(rng: &mut StdRng, len: usize, amp: f64) -> Vec<T> {
    (0..len)
        .map(|_| T::from_f64(rng.random_range(-amp..amp)))
        .collect()
}

pub fn inputs<T: Element>(case: &Case) -> Inputs<T> {
    let vis_end = VisEnd::from_rows(&case.rows).expect("valid case");
    let shape = AttnShape {
        rows: case.rows.len(),
        n: case.n(),
        q_heads: case.q_heads,
        kv_heads: case.kv_heads,
        head_dim: case.head_dim,
    };
    let mut rng = StdRng::seed_from_u64(case.seed);
    // Unit-variance-ish q and k with a boost on q: scaled scores spread over a few units, so the
    // softmax is neither flat nor one-hot.
    let q = random_vec(&mut rng, shape.q_len(), 2.5);
    let k = random_vec(&mut rng, shape.kv_len(), 1.7);
    let v = random_vec(&mut rng, shape.kv_len(), 1.0);
    Inputs {
        scale: 1.0 / (case.head_dim as f32).sqrt(),
        shape,
        vis_end,
        q,
        k,
        v,
    }
}

/// Compares a kernel's dense O `[rows, n, q_heads, d]` and LSE `[rows, q_heads, n]` with the
/// reference, every element within its derived bound for `arith` and the kernel's `tile` (the
/// block lists it walked). Returns a description of the first failure.
pub fn check<T: Element + Sync>(
    label: &str,
    dtype: Dtype,
    inp: &Inputs<T>,
    o: &[T],
    lse: &[f32],
    arith: Arith,
    tile: TileShape,
) -> Result<(), String> {
    let want = reference(label, inp)?;
    let tol = tolerances(inp, dtype, &want, arith, tile);
    check_against(label, inp, &want, &tol, o, lse)
}

/// The f64 reference forward of `inp`.
pub fn reference<T: Element>(label: &str, inp: &Inputs<T>) -> Result<ForwardOut, String> {
    reference::forward(
        &inp.shape,
        &inp.vis_end,
        &inp.q,
        &inp.k,
        &inp.v,
        f64::from(inp.scale),
    )
    .map_err(|e| format!("{label}: reference failed: {e}"))
}

/// [`check`] with the reference and the bounds given.
pub fn check_against<T: Element>(
    label: &str,
    inp: &Inputs<T>,
    want: &ForwardOut,
    tol: &Tolerances,
    o: &[T],
    lse: &[f32],
) -> Result<(), String> {
    let got_o: Vec<f64> = o.iter().map(|x| x.to_f64()).collect();
    let got_lse: Vec<f64> = lse.iter().map(|&x| f64::from(x)).collect();
    if let Some(i) = got_o.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "{label}: O[{i}] = {} (not written or NaN)",
            got_o[i]
        ));
    }
    let sh = &inp.shape;
    let d = sh.head_dim;
    // (error, bound) of the element with the largest error / bound ratio.
    let mut lse_worst = (0.0f64, 1.0f64);
    for (idx, (&g, &w)) in got_lse.iter().zip(&want.lse).enumerate() {
        let (r, h, i) = (
            idx / (sh.q_heads * sh.n),
            idx / sh.n % sh.q_heads,
            idx % sh.n,
        );
        if w == f64::NEG_INFINITY {
            if g != f64::NEG_INFINITY {
                return Err(format!(
                    "{label}: row {r} head {h} query {i} sees no key: LSE {g}, want -inf"
                ));
            }
            let at = ((r * sh.n + i) * sh.q_heads + h) * d;
            if let Some(x) = got_o[at..at + d].iter().find(|&&x| x != 0.0) {
                return Err(format!(
                    "{label}: row {r} head {h} query {i} sees no key: O has {x}, want 0"
                ));
            }
            continue;
        }
        let err = (g - w).abs();
        let bound = tol.lse[idx];
        if err.is_nan() || err > bound {
            return Err(format!(
                "{label}: row {r} head {h} query {i}: LSE {g}, want {w}: error {err:.3e} > \
                 bound {bound:.3e}"
            ));
        }
        if err * lse_worst.1 > lse_worst.0 * bound {
            lse_worst = (err, bound);
        }
    }
    let mut o_worst = (0.0f64, 1.0f64);
    for (idx, (&g, &w)) in got_o.iter().zip(&want.o).enumerate() {
        let err = (g - w).abs();
        let bound = tol.o[idx];
        if err.is_nan() || err > bound {
            let (t, h, c) = (idx / (sh.q_heads * d), idx / d % sh.q_heads, idx % d);
            return Err(format!(
                "{label}: row {} query {} head {h} column {c}: O {g}, want {w}: error {err:.3e} > \
                 bound {bound:.3e}",
                t / sh.n,
                t % sh.n
            ));
        }
        if err * o_worst.1 > o_worst.0 * bound {
            o_worst = (err, bound);
        }
    }
    let max_lse_err = reference::max_abs_error(&got_lse, &want.lse);
    eprintln!(
        "{label}: O rel L2 {:.3e}, worst O error/bound {:.3e}/{:.3e}; LSE max abs {max_lse_err:.3e}, \
         worst LSE error/bound {:.3e}/{:.3e}",
        reference::rel_l2_error(&got_o, &want.o),
        o_worst.0,
        o_worst.1,
        lse_worst.0,
        lse_worst.1
    );
    Ok(())
}
