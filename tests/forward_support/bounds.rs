//! Per-element error bounds of the forward kernel's O and LSE against the f64 reference, derived
//! from the arithmetic the kernel does (docs/forward.md, "Error bounds", has the derivation; the
//! names below follow it). Every figure is either IEEE f32 rounding (unit roundoff u = 2^-24),
//! the PTX ISA's documented maximum error of an approximate instruction, or the PTX ISA's
//! latitude for `mma` (on the device) / the emulator's own `mma` rounding (on the emulator).
//!
//! The bounds use exact quantities of the inputs, computed here in f64 for each query i over its
//! visible keys j: the scores' magnitude sums (which bound the `mma` rounding of each score), the
//! softmax weights w_ij of the reference, and sums of |v| weighted by them.

use prefix_attn::plan::Plan;
use prefix_attn::reference::{Element, ForwardOut};

use super::cases::Dtype;
use super::check::Inputs;

/// f32 unit roundoff.
pub const U: f64 = 1.0 / 16_777_216.0;
/// ex2.approx.f32, relative to 2^x: "2 ulp from correctly rounded result" (PTX ISA, Floating
/// Point Instructions: ex2) is at most 4u of the result, plus the correctly rounded result's
/// own u; the factor covers the second-order terms.
pub const EX2: f64 = 5.0 * U * (1.0 + 1.0 / 1_048_576.0);
/// lg2.approx.f32 on inputs in (0.5, 2): absolute error 2^-22 (PTX ISA, ... lg2). The kernel
/// only takes lg2 of the significand of l, in [1, 2).
pub const LG2_ABS: f64 = 1.0 / 4_194_304.0;
/// Relative error of scale_log2 = fl(scale * fl(log2 e)) against scale * log2 e: two roundings.
pub const ETA: f64 = 2.0001 * U;

/// Which `mma` rounding the bound assumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    /// The SIMT emulator: each mma.m16n8k16 sums its 16 products and c exactly (in f64) and
    /// rounds once to f32 (plus the f64 sum's own error, at most 16 * 2^-53 of the magnitudes).
    Emulator,
    /// A GPU: the PTX ISA leaves the order and rounding of the mma's accumulation unspecified
    /// ("at least single precision"), so each of its 16 additions may err by one f32 ulp (2u
    /// relative) of a partial sum bounded by the magnitudes, plus the final rounding: at most
    /// 17 * 2u of (|c| + sum |a b|) per mma (as in tests/emu_gpu_fidelity.rs).
    Device,
}

impl Arith {
    /// Error of one mma step, relative to |c| + sum |a b| (device), or to |d| (emulator).
    fn mma_step(self) -> f64 {
        match self {
            Arith::Emulator => U,
            Arith::Device => 34.0 * U,
        }
    }
}

/// Bounds for every output element, in the layouts of O and LSE.
pub struct Tolerances {
    /// `[rows, n, q_heads, d]`: |O_kernel - O_ref| allowed.
    pub o: Vec<f64>,
    /// `[rows, q_heads, n]`: |LSE_kernel - LSE_ref| allowed (0 where the query sees no key).
    pub lse: Vec<f64>,
    /// The largest coefficient of the O bound relative to sum_j w_ij |v_jc| (for messages).
    pub o_rel_max: f64,
}

/// Unit roundoff of the input dtype (P and O are rounded to it) and the absolute rounding of a
/// value below its normals (f16 subnormals are spaced 2^-24; bf16 shares f32's range).
fn dtype_rounding(dtype: Dtype) -> (f64, f64) {
    match dtype {
        Dtype::Bf16 => (1.0 / 256.0, 2f64.powi(-134)),
        Dtype::F16 => (1.0 / 2048.0, 2f64.powi(-25)),
    }
}

/// Score error bound of one (query, key) pair in raw units: the kernel's Q K^T runs head_dim / 16
/// mma steps in ascending order of 16-column chunks, each adding 16 products to the running
/// score c (0 at first).
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
            Arith::Emulator => U * c.abs() + 2f64.powi(-48) * (before + mag),
            Arith::Device => arith.mma_step() * (before + mag),
        };
    }
    // The computed partial sums differ from the exact ones by the error so far (< 2^-10).
    (c, bound * (1.0 + 1.0 / 1024.0))
}

/// One query's ingredients: its visible keys' weights and gaps, and the bounds' scalars.
struct Query {
    /// max_j scale * (score error bound of j).
    e_s: f64,
    /// Visible keys.
    n_vis: usize,
    /// (key, w_ij, gap_ij = max_k sigma_ik - sigma_ij) per visible key.
    keys: Vec<(usize, f64, f64)>,
}

fn query<T: Element>(
    inp: &Inputs<T>,
    lse: f64,
    r: usize,
    h: usize,
    i: usize,
    arith: Arith,
) -> Query {
    let sh = &inp.shape;
    let d = sh.head_dim;
    let g = h / sh.group();
    let row = inp.vis_end.row(r);
    let q: Vec<f64> = inp.q[((r * sh.n + i) * sh.q_heads + h) * d..][..d]
        .iter()
        .map(|x| x.to_f64())
        .collect();
    let scale = f64::from(inp.scale);
    let mut sig = Vec::new();
    let mut e_s = 0.0f64;
    let mut kv = vec![0.0; d];
    for (j, &end) in row.iter().enumerate().take(i + 1) {
        if i >= end as usize {
            continue;
        }
        for (x, y) in kv
            .iter_mut()
            .zip(&inp.k[((r * sh.n + j) * sh.kv_heads + g) * d..][..d])
        {
            *x = y.to_f64();
        }
        let (s, err) = score_error(&q, &kv, arith);
        e_s = e_s.max(scale * err);
        sig.push((j, scale * s));
    }
    let top = sig.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    Query {
        e_s,
        n_vis: sig.len(),
        keys: sig
            .into_iter()
            .map(|(j, s)| (j, (s - lse).exp(), top - s))
            .collect(),
    }
}

/// The bounds of every O and LSE element of `inp` against `want` (the reference on the same
/// rounded inputs), for the kernel's tiling (taken from the plan's forward block lists).
pub fn tolerances<T: Element + Sync>(
    inp: &Inputs<T>,
    dtype: Dtype,
    want: &ForwardOut,
    arith: Arith,
) -> Tolerances {
    let sh = inp.shape;
    let d = sh.head_dim;
    let plan = Plan::new(inp.vis_end.clone()).expect("plan of a valid case");
    let mask = plan.forward_mask();
    let (block_q, block_k) = (mask.tile().block_q(), mask.tile().block_k());
    let (u_t, tiny_t) = dtype_rounding(dtype);
    let units: Vec<(usize, usize)> = (0..sh.rows)
        .flat_map(|r| (0..sh.q_heads).map(move |h| (r, h)))
        .collect();
    // Each (row, head) unit: LSE bounds [n] and O bounds [n][d], in parallel over units.
    let unit = |&(r, h): &(usize, usize)| -> (Vec<f64>, Vec<f64>, f64) {
        let g = h / sh.group();
        let mut lse_tol = vec![0.0; sh.n];
        let mut o_tol = vec![0.0; sh.n * d];
        let mut rel_max = 0.0f64;
        for i in 0..sh.n {
            let lse = want.lse[(r * sh.q_heads + h) * sh.n + i];
            if lse == f64::NEG_INFINITY {
                continue; // exact checks: O = 0, LSE = -inf
            }
            let qr = query(inp, lse, r, h, i, arith);
            let n = qr.n_vis as f64;
            let tiles = mask.q_list(r, i / block_q).count() as f64;
            // Per-term relative errors of l: the in-tile sum (block_k/4 - 1 adds per thread),
            // one FMA per tile, two quad adds.
            let lambda = (tiles + block_k as f64 / 4.0 + 1.0) * U;
            // Argument roundings (the FMA, the rescale subtraction) and scale_log2's error move
            // a term by (2u + eta) times its gap to the max.
            // Summed over the weights: kappa times the weighted mean gap (at most ln n).
            let kappa = 2.0 * U + ETA;
            let mean_gap: f64 = qr.keys.iter().map(|k| k.1 * k.2).sum();
            let lse_tol_i = qr.e_s
                + U * lse.abs()
                + tiles * EX2
                + lambda
                + kappa * mean_gap
                + std::f64::consts::LN_2 * LG2_ABS
                + 4.0 * U * (n.ln() + 1.0)
                + n * 2f64.powi(-126);
            lse_tol[i] = lse_tol_i * (1.0 + 1.0 / 1024.0);
            // O: weights move by at most e_s + tiles * EX2 each (twice after normalising), P and
            // O round to the dtype, P V accumulates in mma steps, l's sum rounds.
            let pv = (block_k as f64 / 16.0) * tiles * arith.mma_step() + (tiles - 1.0) * U;
            let rel = 2.0 * (qr.e_s + tiles * EX2) + u_t + pv + lambda + kappa * mean_gap;
            assert!(
                rel < 0.05,
                "row {r} head {h} query {i}: first-order O bound {rel:e} too large to apply"
            );
            let slack = 1.0 + 2.0 * rel;
            rel_max = rel_max.max(rel);
            // Per column c: sum_j w |v_jc|, sum_j w gap_j |v_jc| and sum_j |v_jc|.
            let (mut a, mut a_gap, mut u_sum) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
            for &(j, w, gap) in &qr.keys {
                let v = &inp.v[((r * sh.n + j) * sh.kv_heads + g) * d..][..d];
                for c in 0..d {
                    let x = v[c].to_f64().abs();
                    a[c] += w * x;
                    a_gap[c] += w * gap * x;
                    u_sum[c] += x;
                }
            }
            for c in 0..d {
                let o = want.o[((r * sh.n + i) * sh.q_heads + h) * d + c].abs();
                o_tol[i * d + c] = slack
                    * (rel * a[c]
                        + kappa * a_gap[c]
                        + (u_t + 2.0 * U) * o
                        + (tiny_t + 2f64.powi(-126)) * 1.002 * u_sum[c])
                    + tiny_t;
            }
        }
        (lse_tol, o_tol, rel_max)
    };
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let per = units.len().div_ceil(threads).max(1);
    let results: Vec<(Vec<f64>, Vec<f64>, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = units
            .chunks(per)
            .map(|chunk| s.spawn(move || chunk.iter().map(unit).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("bound thread"))
            .collect()
    });
    let mut tol = Tolerances {
        o: vec![0.0; sh.q_len()],
        lse: vec![0.0; sh.lse_len()],
        o_rel_max: 0.0,
    };
    for (&(r, h), (lse_tol, o_tol, rel_max)) in units.iter().zip(results) {
        tol.lse[(r * sh.q_heads + h) * sh.n..][..sh.n].copy_from_slice(&lse_tol);
        for i in 0..sh.n {
            let at = ((r * sh.n + i) * sh.q_heads + h) * d;
            tol.o[at..at + d].copy_from_slice(&o_tol[i * d..(i + 1) * d]);
        }
        tol.o_rel_max = tol.o_rel_max.max(rel_max);
    }
    tol
}
