//! Per-element bounds of the forward kernel's O and LSE against the f64 reference on the same
//! inputs (docs/forward.md, "Error bounds", derives them; the names below follow it).
//!
//! For each query i the bound uses exact quantities of the inputs, computed here in f64 over its
//! visible keys j: the scores' magnitude sums in the kernel's order of 16-column mma steps (which
//! bound the rounding of each score), the reference's softmax weights w_ij, their gaps to the
//! largest score, and sums of |v| weighted by them. With E_s the largest score error (scaled),
//! T the k tiles the query's q tile visits, B the k tile's width, n the visible keys:
//!
//! ```text
//! |dLSE| <= (E_s + u|LSE| + T E_x + (T + B/4 + 1) u + (2u + eta) sum_j w_j gap_j
//!            + ln 2 E_l + 4u (ln n + 1) + n 2^-126) (1 + 2^-10)
//! |dO_c| <= (1 + 2 rho) [rho A + (2u + eta) A' + (u_T + 2u) |O_c| + (tau + 2^-126) 1.002 V] + tau
//! rho     = 2 (E_s + T E_x) + u_T + (B/16) T gamma + (T - 1) u + (T + B/4 + 1) u
//!           + (2u + eta) sum_j w_j gap_j
//! ```
//!
//! with A = sum_j w_j |v_jc|, A' = sum_j w_j gap_j |v_jc|, V = sum_j |v_jc|, u_T and tau the
//! dtype's unit roundoff and underflow (tau = 2^-25 for f16, 2^-134 for bf16), gamma the mma step
//! ([`Arith::mma_step`]) and the figures of [`super::figures`].

use crate::error::{Error, Result};
use crate::mask::BlockMask;
use crate::reference::{self, Element, ForwardOut};
use crate::shape::AttnShape;

use super::figures::{Arith, Dtype, ETA, EX2, FTZ, LG2_ABS, U};
use super::inputs::{ForwardRun, Inputs};
use super::parallel::par_map;

/// The forward's per-element bounds for one call, with the reference they are bounds around.
///
/// Built by [`ForwardBounds::new`] from the call's inputs and how the kernel ran; checks a
/// kernel's outputs with [`ForwardBounds::check`].
#[derive(Debug, Clone)]
pub struct ForwardBounds {
    pub(crate) shape: AttnShape,
    pub(crate) run: ForwardRun,
    pub(crate) reference: ForwardOut,
    pub(crate) o: Vec<f64>,
    pub(crate) lse: Vec<f64>,
}

impl ForwardBounds {
    /// The f64 reference of `inputs` and the bound of every O and LSE element of a kernel that
    /// ran as `run` describes.
    ///
    /// Errors: everything [`crate::reference::forward`] refuses (shape, `vis_end` of other rows
    /// or length, slice lengths, a scale that is not finite and positive); a head dim that is not
    /// a multiple of 16 (`UnsupportedHeadDim`: the derivation counts 16-wide mma steps); an input
    /// that is not finite or not exactly a `run.dtype` value (`InvalidArgument` naming the tensor
    /// and index); block lists that cannot be built at `run.tile`; and a query whose first-order
    /// O bound would exceed 5% relative (`InvalidArgument`: the derivation drops second-order
    /// terms that are no longer small there; scores of that size are far outside what bf16/f16
    /// attention meets).
    pub fn new<T: Element>(inputs: Inputs<'_, T>, run: ForwardRun) -> Result<ForwardBounds> {
        inputs.validate(run.dtype)?;
        let reference = reference::forward(
            &inputs.shape,
            inputs.vis_end,
            inputs.q,
            inputs.k,
            inputs.v,
            inputs.scale.as_f64(),
        )?;
        let (o, lse) = tolerances(&inputs, &reference, run)?;
        Ok(ForwardBounds {
            shape: inputs.shape,
            run,
            reference,
            o,
            lse,
        })
    }

    /// The f64 reference (O and LSE) of the inputs.
    pub fn reference(&self) -> &ForwardOut {
        &self.reference
    }

    /// `[rows, n, q_heads, d]`: how far each O element may be from the reference's (0 where the
    /// query sees no key: O must be exactly 0 there).
    pub fn o(&self) -> &[f64] {
        &self.o
    }

    /// `[rows, q_heads, n]`: how far each LSE element may be from the reference's (0 where the
    /// query sees no key: LSE must be exactly -inf there).
    pub fn lse(&self) -> &[f64] {
        &self.lse
    }

    /// The shape of the call.
    pub fn shape(&self) -> &AttnShape {
        &self.shape
    }

    /// How the kernel ran, as given.
    pub fn run(&self) -> ForwardRun {
        self.run
    }
}

/// Unit roundoff of the element type (P and O are rounded to it) and the absolute rounding of a
/// value below its normals (f16 subnormals are spaced 2^-24, so 2^-25; bf16 shares f32's range,
/// so 2^-134).
fn dtype_rounding(dtype: Dtype) -> (f64, f64) {
    (dtype.unit_roundoff(), dtype.underflow())
}

/// Score error bound of one (query, key) pair in raw units: the kernel's Q K^T runs head_dim / 16
/// mma steps in ascending order of 16-column chunks, each adding 16 products to the running
/// score c (0 at first). Returns the exact score and the bound.
fn score_error(q: &[f64], k: &[f64], arith: Arith) -> (f64, f64) {
    let mut c = 0.0f64;
    let mut bound = 0.0f64;
    for (qc, kc) in q.chunks(16).zip(k.chunks(16)) {
        let mut mag = 0.0;
        let mut part = 0.0;
        for (a, b) in qc.iter().zip(kc) {
            mag += (a * b).abs();
            part += a * b;
        }
        let before = c.abs();
        c += part;
        bound += match arith {
            // The rounding of the result, plus the f64 sum's own error (16 * 2^-53 < 2^-48).
            Arith::Emulator => U * c.abs() + 2f64.powi(-48) * (before + mag),
            Arith::Device => arith.mma_step() * (before + mag),
        };
    }
    // The computed partial sums differ from the exact ones by the error so far (< 2^-10).
    (c, bound * (1.0 + 1.0 / 1024.0))
}

/// The inputs widened to f64 once (exact for every element type), V as magnitudes; K and |V|
/// laid out `[rows, kv_heads, n, d]` so that one query's pass over its keys reads contiguous
/// memory.
struct Wide {
    q: Vec<f64>,
    k: Vec<f64>,
    v_abs: Vec<f64>,
}

impl Wide {
    fn new<T: Element>(inp: &Inputs<'_, T>) -> Wide {
        let sh = &inp.shape;
        let d = sh.head_dim;
        let head_major = |x: &[T], f: fn(f64) -> f64| -> Vec<f64> {
            let mut out = Vec::with_capacity(x.len());
            for r in 0..sh.rows {
                for g in 0..sh.kv_heads {
                    for j in 0..sh.n {
                        let at = ((r * sh.n + j) * sh.kv_heads + g) * d;
                        out.extend(x[at..at + d].iter().map(|e| f(e.to_f64())));
                    }
                }
            }
            out
        };
        Wide {
            q: inp.q.iter().map(|x| x.to_f64()).collect(),
            k: head_major(inp.k, |x| x),
            v_abs: head_major(inp.v, f64::abs),
        }
    }

    /// Row j of K (or |V|) of kv head g in row r.
    fn at<'a>(x: &'a [f64], sh: &AttnShape, r: usize, g: usize, j: usize) -> &'a [f64] {
        let d = sh.head_dim;
        &x[((r * sh.kv_heads + g) * sh.n + j) * d..][..d]
    }
}

/// What the bound of one query needs from the kernel's tiling and the dtype.
struct Setup<'a> {
    mask: &'a BlockMask,
    block_q: usize,
    block_k: usize,
    u_t: f64,
    tiny_t: f64,
    arith: Arith,
}

/// The LSE bound of query i of (row r, head h), returned, and its O bounds, written to `o_tol`
/// (d values). `keys` is scratch space.
fn query_bounds<T: Element>(
    inp: &Inputs<'_, T>,
    wide: &Wide,
    want: &ForwardOut,
    st: &Setup<'_>,
    (r, h, i): (usize, usize, usize),
    keys: &mut Vec<(usize, f64, f64)>,
    o_tol: &mut [f64],
) -> Result<f64> {
    let sh = &inp.shape;
    let d = sh.head_dim;
    let g = h / sh.group();
    let lse = want.lse[(r * sh.q_heads + h) * sh.n + i];
    let scale = inp.scale.as_f64();
    let q = &wide.q[((r * sh.n + i) * sh.q_heads + h) * d..][..d];
    // Visible keys: scaled exact score, and E_s = scale * max_j (score error bound of j).
    keys.clear();
    let mut e_s = 0.0f64;
    for (j, &end) in inp.vis_end.row(r).iter().enumerate().take(i + 1) {
        if i >= end as usize {
            continue;
        }
        let k = Wide::at(&wide.k, sh, r, g, j);
        let (s, err) = score_error(q, k, st.arith);
        e_s = e_s.max(scale * err);
        keys.push((j, scale * s, 0.0));
    }
    let top = keys.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
    // (key, w_ij, w_ij * gap_ij), gap_ij = max_k sigma_ik - sigma_ij.
    for x in keys.iter_mut() {
        let w = (x.1 - lse).exp();
        *x = (x.0, w, w * (top - x.1));
    }
    let n = keys.len() as f64;
    let tiles = st.mask.q_list(r, i / st.block_q).count() as f64;
    // Per-term relative errors of l: the in-tile sum (block_k/4 - 1 adds per thread), one FMA
    // per tile, two quad adds.
    let lambda = (tiles + st.block_k as f64 / 4.0 + 1.0) * U;
    // Argument roundings (the FMA, the rescale subtraction) and scale_log2's error move a term
    // by (2u + eta) times its gap to the max; summed over the weights, kappa times the weighted
    // mean gap (at most ln n).
    let kappa = 2.0 * U + ETA;
    let mean_gap: f64 = keys.iter().map(|x| x.2).sum();
    let lse_tol = (e_s
        + U * lse.abs()
        + tiles * EX2
        + lambda
        + kappa * mean_gap
        + std::f64::consts::LN_2 * LG2_ABS
        + 4.0 * U * (n.ln() + 1.0)
        + n * FTZ)
        * (1.0 + 1.0 / 1024.0);
    // O: weights move by at most e_s + tiles * EX2 each (twice after normalising), P and O
    // round to the dtype, P V accumulates in mma steps (and the rescales), l's sum rounds.
    let pv = (st.block_k as f64 / 16.0) * tiles * st.arith.mma_step() + (tiles - 1.0) * U;
    let rel = 2.0 * (e_s + tiles * EX2) + st.u_t + pv + lambda + kappa * mean_gap;
    // The derivation is first order in rel (weights move by e^{2 Phi} - 1 ~ 2 Phi): past a few
    // percent its dropped terms are no longer small, so the bound does not apply.
    if rel.is_nan() || rel >= 0.05 {
        return Err(Error::InvalidArgument {
            what: "forward error bound",
            detail: format!(
                "row {r} head {h} query {i}: first-order O bound {rel:e} (relative) too large \
                 to apply (the derivation needs it below 0.05)"
            ),
        });
    }
    // Per column c: o_tol accumulates rel * sum_j w |v_jc| + kappa * sum_j w gap |v_jc| +
    // (tiny + 2^-126) * 1.002 * sum_j |v_jc| (l >= 1 - 2^-10), then the output's own rounding.
    o_tol.fill(0.0);
    let flushed = (st.tiny_t + FTZ) * 1.002;
    for &(j, w, wg) in keys.iter() {
        let coef = rel * w + kappa * wg + flushed;
        let v = Wide::at(&wide.v_abs, sh, r, g, j);
        for (t, &x) in o_tol.iter_mut().zip(v) {
            *t += coef * x;
        }
    }
    let slack = 1.0 + 2.0 * rel;
    let o = &want.o[((r * sh.n + i) * sh.q_heads + h) * d..][..d];
    for (t, &oc) in o_tol.iter_mut().zip(o) {
        *t = slack * (*t + (st.u_t + 2.0 * U) * oc.abs()) + st.tiny_t;
    }
    Ok(lse_tol)
}

/// The bounds of every O and LSE element of `inp` against `want` (the reference on the same
/// inputs), for a kernel that ran as `run`: `(o, lse)` in the layouts of O and LSE.
fn tolerances<T: Element>(
    inp: &Inputs<'_, T>,
    want: &ForwardOut,
    run: ForwardRun,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let sh = inp.shape;
    let d = sh.head_dim;
    let mask = &BlockMask::build(inp.vis_end, run.tile)?;
    let (u_t, tiny_t) = dtype_rounding(run.dtype);
    let st = Setup {
        mask,
        block_q: mask.tile().block_q(),
        block_k: mask.tile().block_k(),
        u_t,
        tiny_t,
        arith: run.arith,
    };
    let wide = Wide::new(inp);
    // Work items of up to 64 queries of one (row, head), spread over the threads.
    const CHUNK: usize = 64;
    let items: Vec<(usize, usize, usize)> = (0..sh.rows)
        .flat_map(|r| (0..sh.q_heads).map(move |h| (r, h)))
        .flat_map(|(r, h)| (0..sh.n).step_by(CHUNK).map(move |i0| (r, h, i0)))
        .collect();
    let item = |&(r, h, i0): &(usize, usize, usize)| -> Result<(Vec<f64>, Vec<f64>)> {
        let i1 = (i0 + CHUNK).min(sh.n);
        let mut lse_tol = vec![0.0; i1 - i0];
        let mut o_tol = vec![0.0; (i1 - i0) * d];
        let mut keys = Vec::new();
        for i in i0..i1 {
            if want.lse[(r * sh.q_heads + h) * sh.n + i] == f64::NEG_INFINITY {
                continue; // exact checks: O = 0, LSE = -inf
            }
            let slot = &mut o_tol[(i - i0) * d..][..d];
            lse_tol[i - i0] = query_bounds(inp, &wide, want, &st, (r, h, i), &mut keys, slot)?;
        }
        Ok((lse_tol, o_tol))
    };
    let results = par_map(&items, item);
    let mut o = vec![0.0; sh.q_len()];
    let mut lse = vec![0.0; sh.lse_len()];
    for (&(r, h, i0), result) in items.iter().zip(results) {
        let (lse_tol, o_tol) = result?;
        for (di, &l) in lse_tol.iter().enumerate() {
            let i = i0 + di;
            lse[(r * sh.q_heads + h) * sh.n + i] = l;
            let at = ((r * sh.n + i) * sh.q_heads + h) * d;
            o[at..at + d].copy_from_slice(&o_tol[di * d..(di + 1) * d]);
        }
    }
    Ok((o, lse))
}
