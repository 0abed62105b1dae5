//! Per-element error bounds of the forward kernel's O and LSE against the f64 reference, derived
//! from the arithmetic the kernel does (docs/forward.md, "Error bounds", has the derivation; the
//! names below follow it). Every figure is either IEEE f32 rounding (unit roundoff u = 2^-24),
//! the PTX ISA's documented maximum error of an approximate instruction, or the PTX ISA's
//! latitude for `mma` (on the device) / the emulator's own `mma` rounding (on the emulator).
//!
//! The bounds use exact quantities of the inputs, computed here in f64 for each query i over its
//! visible keys j: the scores' magnitude sums (which bound the `mma` rounding of each score), the
//! softmax weights w_ij of the reference, and sums of |v| weighted by them.

use prefix_attn::mask::{BlockMask, TileShape};
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

/// The inputs widened to f64 once (exact for bf16 and f16), V as magnitudes; K and |V| laid out
/// `[rows, kv_heads, n, d]` so that one query's pass over its keys reads contiguous memory.
struct Wide {
    q: Vec<f64>,
    k: Vec<f64>,
    v_abs: Vec<f64>,
}

impl Wide {
    fn new<T: Element>(inp: &Inputs<T>) -> Wide {
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
            k: head_major(&inp.k, |x| x),
            v_abs: head_major(&inp.v, f64::abs),
        }
    }

    /// Row j of K (or |V|) of kv head g in row r.
    fn at<'a>(
        x: &'a [f64],
        sh: &prefix_attn::AttnShape,
        r: usize,
        g: usize,
        j: usize,
    ) -> &'a [f64] {
        let d = sh.head_dim;
        &x[((r * sh.kv_heads + g) * sh.n + j) * d..][..d]
    }
}

/// What the bound of one query needs from the kernel's tiling and the dtype.
struct Setup<'a> {
    mask: &'a prefix_attn::mask::BlockMask,
    block_q: usize,
    block_k: usize,
    u_t: f64,
    tiny_t: f64,
    arith: Arith,
}

/// The LSE bound of query i of (row r, head h), returned, and its O bounds, written to `o_tol`
/// (d values). `keys` is scratch space.
#[allow(clippy::too_many_arguments)]
fn query_bounds<T: Element>(
    inp: &Inputs<T>,
    wide: &Wide,
    want: &ForwardOut,
    st: &Setup<'_>,
    (r, h, i): (usize, usize, usize),
    keys: &mut Vec<(usize, f64, f64)>,
    o_tol: &mut [f64],
) -> f64 {
    let sh = &inp.shape;
    let d = sh.head_dim;
    let g = h / sh.group();
    let lse = want.lse[(r * sh.q_heads + h) * sh.n + i];
    let scale = f64::from(inp.scale);
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
        + n * 2f64.powi(-126))
        * (1.0 + 1.0 / 1024.0);
    // O: weights move by at most e_s + tiles * EX2 each (twice after normalising), P and O
    // round to the dtype, P V accumulates in mma steps (and the rescales), l's sum rounds.
    let pv = (st.block_k as f64 / 16.0) * tiles * st.arith.mma_step() + (tiles - 1.0) * U;
    let rel = 2.0 * (e_s + tiles * EX2) + st.u_t + pv + lambda + kappa * mean_gap;
    assert!(
        rel < 0.05,
        "row {r} head {h} query {i}: first-order O bound {rel:e} too large to apply"
    );
    // Per column c: o_tol accumulates rel * sum_j w |v_jc| + kappa * sum_j w gap |v_jc| +
    // (tiny + 2^-126) * 1.002 * sum_j |v_jc| (l >= 1 - 2^-10), then the output's own rounding.
    o_tol.fill(0.0);
    let flushed = (st.tiny_t + 2f64.powi(-126)) * 1.002;
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
    lse_tol
}

/// The bounds of every O and LSE element of `inp` against `want` (the reference on the same
/// rounded inputs), for a kernel that walked the block lists at `tile`.
pub fn tolerances<T: Element + Sync>(
    inp: &Inputs<T>,
    dtype: Dtype,
    want: &ForwardOut,
    arith: Arith,
    tile: TileShape,
) -> Tolerances {
    let sh = inp.shape;
    let d = sh.head_dim;
    let mask = &BlockMask::build(&inp.vis_end, tile).expect("block lists of a valid case");
    let (u_t, tiny_t) = dtype_rounding(dtype);
    let st = Setup {
        mask,
        block_q: mask.tile().block_q(),
        block_k: mask.tile().block_k(),
        u_t,
        tiny_t,
        arith,
    };
    let wide = Wide::new(inp);
    // Work items of up to 64 queries of one (row, head), spread over the threads.
    const CHUNK: usize = 64;
    let items: Vec<(usize, usize, usize)> = (0..sh.rows)
        .flat_map(|r| (0..sh.q_heads).map(move |h| (r, h)))
        .flat_map(|(r, h)| (0..sh.n).step_by(CHUNK).map(move |i0| (r, h, i0)))
        .collect();
    let item = |&(r, h, i0): &(usize, usize, usize)| -> (Vec<f64>, Vec<f64>) {
        let i1 = (i0 + CHUNK).min(sh.n);
        let mut lse_tol = vec![0.0; i1 - i0];
        let mut o_tol = vec![0.0; (i1 - i0) * d];
        let mut keys = Vec::new();
        for i in i0..i1 {
            if want.lse[(r * sh.q_heads + h) * sh.n + i] == f64::NEG_INFINITY {
                continue; // exact checks: O = 0, LSE = -inf
            }
            let slot = &mut o_tol[(i - i0) * d..][..d];
            lse_tol[i - i0] = query_bounds(inp, &wide, want, &st, (r, h, i), &mut keys, slot);
        }
        (lse_tol, o_tol)
    };
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let per = items.len().div_ceil(threads).max(1);
    let results: Vec<(Vec<f64>, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| s.spawn(move || chunk.iter().map(item).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("bound thread"))
            .collect()
    });
    let mut tol = Tolerances {
        o: vec![0.0; sh.q_len()],
        lse: vec![0.0; sh.lse_len()],
    };
    for (&(r, h, i0), (lse_tol, o_tol)) in items.iter().zip(results) {
        for (di, &l) in lse_tol.iter().enumerate() {
            let i = i0 + di;
            tol.lse[(r * sh.q_heads + h) * sh.n + i] = l;
            let at = ((r * sh.n + i) * sh.q_heads + h) * d;
            tol.o[at..at + d].copy_from_slice(&o_tol[di * d..(di + 1) * d]);
        }
    }
    tol
}
