//! Seeded inputs and the comparison of a kernel's O and LSE with the f64 reference.
//!
//! Tolerances (docs/forward.md explains them):
//! - O: relative L2 error against the reference computed on the same rounded bf16/f16 inputs.
//!   The kernel rounds P to the input dtype before P V and rounds O once at the end; each is a
//!   relative error of at most one unit roundoff u per element (bf16 u = 2^-9, f16 u = 2^-12),
//!   about u/sqrt(3) in RMS each, so a correct kernel lands near u. The bound is 4u:
//!   bf16 2^-7, f16 2^-10. A masking or softmax bug gives errors of order 0.1 - 1.
//! - LSE: absolute error 2^-15: |LSE| < 16 in these tests, where an fp32 ulp is at most 2^-19, so
//!   16 ulps for the fp32 scores, the tile-by-tile fp32 sum and ln (ex2.approx adds ~2^-22
//!   relative per term on the GPU).
//! - Queries that see no key: O exactly 0 and LSE exactly -inf; everywhere else both finite.

use half::{bf16, f16};
use prefix_attn::mask::VisEnd;
use prefix_attn::reference::{self, Element};
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cases::{Case, Dtype};

pub const O_REL_L2_BF16: f64 = 1.0 / 128.0;
pub const O_REL_L2_F16: f64 = 1.0 / 1024.0;
pub const LSE_ABS: f64 = 1.0 / 32768.0;

/// Bit patterns used to poison outputs before a launch: NaN in bf16/f16, NaN in f32.
pub const POISON_U16: u16 = 0x7fff;
pub const POISON_F32: f32 = f32::NAN;

pub fn o_tolerance(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::Bf16 => O_REL_L2_BF16,
        Dtype::F16 => O_REL_L2_F16,
    }
}

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
/// reference. Returns a description of the first failure.
pub fn check<T: Element>(
    label: &str,
    dtype: Dtype,
    inp: &Inputs<T>,
    o: &[T],
    lse: &[f32],
) -> Result<(), String> {
    let want = reference::forward(
        &inp.shape,
        &inp.vis_end,
        &inp.q,
        &inp.k,
        &inp.v,
        f64::from(inp.scale),
    )
    .map_err(|e| format!("{label}: reference failed: {e}"))?;
    let got_o: Vec<f64> = o.iter().map(|x| x.to_f64()).collect();
    let got_lse: Vec<f64> = lse.iter().map(|&x| f64::from(x)).collect();
    if let Some(i) = got_o.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "{label}: O[{i}] = {} (not written or NaN)",
            got_o[i]
        ));
    }
    let sh = &inp.shape;
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
            let at = ((r * sh.n + i) * sh.q_heads + h) * sh.head_dim;
            if let Some(x) = got_o[at..at + sh.head_dim].iter().find(|&&x| x != 0.0) {
                return Err(format!(
                    "{label}: row {r} head {h} query {i} sees no key: O has {x}, want 0"
                ));
            }
        } else if !g.is_finite() {
            return Err(format!(
                "{label}: row {r} head {h} query {i}: LSE {g}, want {w}"
            ));
        }
    }
    let o_err = reference::rel_l2_error(&got_o, &want.o);
    let lse_err = reference::max_abs_error(&got_lse, &want.lse);
    let tol = o_tolerance(dtype);
    eprintln!("{label}: O rel L2 {o_err:.3e} (tol {tol:.1e}), LSE max abs {lse_err:.3e} (tol {LSE_ABS:.1e})");
    if o_err.is_nan() || o_err > tol {
        return Err(format!("{label}: O rel L2 error {o_err:.3e} > {tol:.1e}"));
    }
    if lse_err.is_nan() || lse_err > LSE_ABS {
        return Err(format!(
            "{label}: LSE max abs error {lse_err:.3e} > {LSE_ABS:.1e}"
        ));
    }
    Ok(())
}
