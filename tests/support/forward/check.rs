//! Seeded inputs and the comparison of a kernel's O and LSE with the f64 reference.
//!
//! Every element is held to its own bound, derived from the kernel's arithmetic
//! (`prefix_attn::bounds`; docs/forward.md, "Error bounds"): on the emulator with its `mma`
//! rounding, on a device with the PTX ISA's latitude for `mma`; both with the documented error of
//! ex2.approx / lg2.approx (which the emulator models). Queries that see no key: O exactly 0 and
//! LSE exactly -inf; everywhere else both finite. This file turns the crate's check into a test
//! failure message and prints how close a passing case came.

use half::{bf16, f16};
use prefix_attn::bounds::{self, Arith, ForwardBounds, ForwardRun};
use prefix_attn::mask::{TileShape, VisEnd};
use prefix_attn::reference::Element;
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

impl<T> Inputs<T> {
    /// The inputs as `prefix_attn::bounds` takes them.
    pub fn bounds(&self) -> bounds::Inputs<'_, T> {
        bounds::Inputs {
            shape: self.shape,
            vis_end: &self.vis_end,
            q: &self.q,
            k: &self.k,
            v: &self.v,
            scale: self.scale.into(),
        }
    }
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
pub fn check<T: Element>(
    label: &str,
    dtype: Dtype,
    inp: &Inputs<T>,
    o: &[T],
    lse: &[f32],
    arith: Arith,
    tile: TileShape,
) -> Result<(), String> {
    let run = ForwardRun { dtype, arith, tile };
    check_against(label, &forward_bounds(label, inp, run)?, o, lse)
}

/// The reference of `inp` and its bounds for a kernel that ran as `run`.
pub fn forward_bounds<T: Element>(
    label: &str,
    inp: &Inputs<T>,
    run: ForwardRun,
) -> Result<ForwardBounds, String> {
    ForwardBounds::new(inp.bounds(), run).map_err(|e| format!("{label}: bounds failed: {e}"))
}

/// [`check`] with the reference and the bounds given; prints how close the outputs came.
pub fn check_against<T: Element>(
    label: &str,
    bounds: &ForwardBounds,
    o: &[T],
    lse: &[f32],
) -> Result<(), String> {
    let summary = bounds.check(o, lse).map_err(|v| format!("{label}: {v}"))?;
    eprintln!("{label}: {summary}");
    Ok(())
}
