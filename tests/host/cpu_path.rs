//! The CPU path (prefix_attn::cpu) against the f64 reference, every element checked against a
//! bound derived from f32 rounding (u = 2^-24, gamma_k = k u / (1 - k u)); seeded inputs in
//! [-1, 1). Each bound is a worst case for |inputs| <= 1, far above the errors random inputs
//! produce (about 1e-7) and far below what a wrong mask, a skipped tile or a swapped head gives
//! (1e-3 and up), so every test can fail.

use prefix_attn::cpu::{
    apply_rotary, matmul, AttentionLayer, AttnOutput, CpuAttention, LayerDims, MatShape, SwigluMlp,
};
use prefix_attn::layout::{RowBuilder, Tree};
use prefix_attn::mask::{visible, TileShape, VisEnd};
use prefix_attn::reference;
use prefix_attn::rotary::{RotaryDirection, RotaryTable, DEFAULT_THETA};
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn gamma(k: usize) -> f64 {
    k as f64 * U / (1.0 - k as f64 * U)
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

/// Two rows of 120 tokens (not a multiple of any tile side below, so every last tile is ragged):
/// a DPO-like prompt with two completions, a packed document, a tree and padding; a GRPO group
/// of three after a document.
fn mixed_rows() -> VisEnd {
    let mut a = RowBuilder::new();
    a.prefix_completions(40, &[30, 17]).unwrap();
    a.document(9).unwrap();
    let mut tree = Tree::new(6).unwrap();
    let b = tree.add_child(0, 5).unwrap();
    tree.add_child(b, 4).unwrap();
    tree.add_child(0, 3).unwrap();
    a.tree(tree).unwrap();
    let a = a.finish(120).unwrap();
    let mut b = RowBuilder::new();
    b.document(33).unwrap();
    b.prefix_completions(21, &[20, 19, 18]).unwrap();
    let b = b.finish(120).unwrap();
    VisEnd::from_rows(&[a.vis_end(), b.vis_end()]).unwrap()
}

/// Bounds on |O - ref| and |LSE - ref| for every query (derivation in the comments).
struct FwdBounds {
    o: f64,
    lse: f64,
    /// Relative error of one probability P = exp(s - lse) recomputed from the forward's LSE.
    p: f64,
}

fn fwd_bounds(shape: &AttnShape, scale: f64, tile: TileShape) -> FwdBounds {
    let (d, n) = (shape.head_dim, shape.n);
    // Score s = scale * q.k: the dot's rounding gamma_d times sum |q_c k_c| <= d, plus the
    // multiply by scale.
    let e_s = scale * d as f64 * gamma(d) + U * scale * d as f64;
    // One term exp(s - m): the score error, the subtraction (|s - m| <= 2 scale d), exp's own
    // rounding (2u), and one rescale of the running sums per k tile (same three again).
    let k_tiles = n.div_ceil(tile.block_k()) as f64;
    let step = 2.0 * scale * d as f64 * U + 2.0 * U;
    let e_p = e_s + step + k_tiles * (step + 2.0 * U);
    // O = sum p v / sum p with |v| <= 1: numerator and denominator each off by e_p plus the n-term
    // sums (gamma_n), and the final division.
    let o = 2.0 * e_p + 2.0 * gamma(n) + 2.0 * U;
    // LSE = m + ln(l): the score error, ln of l's relative error, and the final rounding.
    let lse = e_s + e_p + gamma(n) + 2.0 * U + U * (2.0 * scale * d as f64 + (n as f64).ln());
    // Recomputing P from the (rounded) LSE: both errors add, plus exp's and the subtraction's.
    let p = e_s + lse + 2.0 * U + U * (2.0 * scale * d as f64 + (n as f64).ln());
    FwdBounds { o, lse, p }
}

fn check_max(what: &str, got: &[f32], want: &[f64], bound: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, b) = (f64::from(g), bound(i));
        let ok = if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= b
        };
        assert!(ok, "{what}[{i}]: got {g}, want {w}, bound {b:e}");
    }
}

fn run_forward(
    vis: &VisEnd,
    tile: TileShape,
    shape: AttnShape,
    threads: usize,
) -> (CpuAttention, Vec<f32>, Vec<f32>, Vec<f32>, AttnOutput, f32) {
    let cpu = CpuAttention::new(vis.clone(), tile)
        .unwrap()
        .with_threads(threads);
    let (q, k, v) = (
        random(shape.q_len(), 1),
        random(shape.kv_len(), 2),
        random(shape.kv_len(), 3),
    );
    let scale = 1.0 / (shape.head_dim as f32).sqrt();
    let out = cpu.forward(&shape, &q, &k, &v, scale).unwrap();
    (cpu, q, k, v, out, scale)
}

#[test]
fn forward_matches_the_reference_for_every_tile_shape() {
    let vis = mixed_rows();
    for (tile, q_heads, kv_heads, head_dim) in [
        ((16, 16), 4, 2, 32),
        ((32, 16), 2, 1, 64),
        ((16, 48), 3, 3, 16),
        ((64, 64), 4, 1, 32),
    ] {
        let tile = TileShape::new(tile.0, tile.1).unwrap();
        let shape = AttnShape {
            rows: vis.rows(),
            n: vis.n(),
            q_heads,
            kv_heads,
            head_dim,
        };
        let (cpu, q, k, v, out, scale) = run_forward(&vis, tile, shape, 3);
        assert!(
            cpu.mask().stats().empty > 0,
            "the layout leaves tiles to skip"
        );
        let want = reference::forward(&shape, &vis, &q, &k, &v, f64::from(scale)).unwrap();
        let b = fwd_bounds(&shape, f64::from(scale), tile);
        let what = format!("{tile:?} {q_heads}/{kv_heads} d{head_dim}");
        check_max(&format!("O {what}"), &out.o, &want.o, |_| b.o);
        check_max(&format!("LSE {what}"), &out.lse, &want.lse, |_| b.lse);
        // Padding queries see nothing: O = 0 and LSE = -inf, exactly.
        assert!(out.lse.contains(&f32::NEG_INFINITY));
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let vis = mixed_rows();
    let tile = TileShape::new(16, 32).unwrap();
    let shape = AttnShape {
        rows: 2,
        n: 120,
        q_heads: 4,
        kv_heads: 2,
        head_dim: 32,
    };
    let (_, _, _, _, one, _) = run_forward(&vis, tile, shape, 1);
    let (cpu, q, k, v, three, scale) = run_forward(&vis, tile, shape, 3);
    assert_eq!(one, three);
    let d_o = random(shape.q_len(), 9);
    let g3 = cpu
        .backward(&shape, &q, &k, &v, &three, &d_o, scale)
        .unwrap();
    let g1 = cpu
        .clone()
        .with_threads(1)
        .backward(&shape, &q, &k, &v, &three, &d_o, scale)
        .unwrap();
    assert_eq!(g1, g3);
}

/// Per kv head and key j: sum over the group's query heads and the queries that see j of the
/// reference probability P_ij, in f64 (what bounds dK_j and dV_j).
fn column_mass(
    shape: &AttnShape,
    vis: &VisEnd,
    q: &[f32],
    k: &[f32],
    lse: &[f64],
    scale: f64,
) -> Vec<f64> {
    let (n, d) = (shape.n, shape.head_dim);
    let mut mass = vec![0f64; shape.rows * n * shape.kv_heads];
    for r in 0..shape.rows {
        for h in 0..shape.q_heads {
            let g = h / shape.group();
            for i in 0..n {
                let l = lse[(r * shape.q_heads + h) * n + i];
                for j in 0..=i {
                    if !visible(vis.row(r), i, j) {
                        continue;
                    }
                    let qi = &q[((r * n + i) * shape.q_heads + h) * d..][..d];
                    let kj = &k[((r * n + j) * shape.kv_heads + g) * d..][..d];
                    let s: f64 = qi
                        .iter()
                        .zip(kj)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    mass[(r * n + j) * shape.kv_heads + g] += (scale * s - l).exp();
                }
            }
        }
    }
    mass
}

#[test]
fn backward_matches_the_reference() {
    let vis = mixed_rows();
    for (tile, q_heads, kv_heads, head_dim) in [((16, 32), 4, 2, 32), ((32, 16), 2, 1, 16)] {
        let tile = TileShape::new(tile.0, tile.1).unwrap();
        let shape = AttnShape {
            rows: vis.rows(),
            n: vis.n(),
            q_heads,
            kv_heads,
            head_dim,
        };
        let (cpu, q, k, v, out, scale) = run_forward(&vis, tile, shape, 2);
        let d_o = random(shape.q_len(), 4);
        let got = cpu.backward(&shape, &q, &k, &v, &out, &d_o, scale).unwrap();
        let sc = f64::from(scale);
        let want = reference::backward(&shape, &vis, &q, &k, &v, &d_o, sc).unwrap();
        let fwd = reference::forward(&shape, &vis, &q, &k, &v, sc).unwrap();
        let mass = column_mass(&shape, &vis, &q, &k, &fwd.lse, sc);

        // With |q|, |k|, |v|, |dO| <= 1 (so |O| <= 1, |dP| and |D| <= d, |dS_ij| <= 2 d P_ij):
        // dS = P (dP - D) is off by P times e_ds: P's relative error on 2d, the two length-d dots,
        // D's share of O's error (d * E_O), and the roundings of the difference and product.
        let b = fwd_bounds(&shape, sc, tile);
        let (d, n) = (head_dim as f64, shape.n);
        let e_ds = d * (2.0 * b.p + 2.0 * gamma(head_dim) + b.o + 4.0 * U);
        // dQ_i = scale sum_j dS_ij k_j over sum_j P_ij = 1: e_ds plus the n-term sum of |dS|.
        let e_dq = sc * (e_ds + 2.0 * d * gamma(n) + 2.0 * d * U);
        check_max("dQ", &got.dq, &want.dq, |_| e_dq);
        // dV_j = sum_i P_ij dO_i and dK_j = scale sum_i dS_ij q_i: per key, the same per-term
        // errors weighted by the key's probability mass (sums of up to group * n terms).
        let terms = shape.group() * n;
        let per_key = |i: usize| mass[i / head_dim];
        check_max("dV", &got.dv, &want.dv, |i| {
            per_key(i) * (b.p + gamma(terms) + U) + U
        });
        check_max("dK", &got.dk, &want.dk, |i| {
            sc * per_key(i) * (e_ds + 2.0 * d * gamma(terms) + 2.0 * d * U) + U
        });
    }
}

#[test]
fn bad_attention_input_is_a_typed_error() {
    let vis = mixed_rows();
    let cpu = CpuAttention::new(vis, TileShape::new(16, 16).unwrap()).unwrap();
    let shape = AttnShape {
        rows: 2,
        n: 120,
        q_heads: 2,
        kv_heads: 1,
        head_dim: 16,
    };
    let (q, kv) = (vec![0f32; shape.q_len()], vec![0f32; shape.kv_len()]);
    assert!(cpu.forward(&shape, &q[1..], &kv, &kv, 0.25).is_err());
    assert!(cpu.forward(&shape, &q, &kv, &kv, f32::NAN).is_err());
    let wrong = AttnShape { n: 64, ..shape };
    assert!(cpu.forward(&wrong, &q, &kv, &kv, 0.25).is_err());
    let out = cpu.forward(&shape, &q, &kv, &kv, 0.25).unwrap();
    assert!(cpu
        .backward(&shape, &q, &kv, &kv, &out, &q[2..], 0.25)
        .is_err());
}

#[test]
fn swiglu_mlp_matches_the_reference() {
    let (hidden, ffn, tokens) = (48, 136, 37);
    let mlp = SwigluMlp::random(hidden, ffn, 7).unwrap().with_threads(2);
    let x = random(tokens * hidden, 8);
    let got = mlp.forward(&x).unwrap();
    let want =
        reference::swiglu_mlp(&x, mlp.w_gate(), mlp.w_up(), mlp.w_down(), hidden, ffn).unwrap();
    // Per token, in f64: the gate and up GEMMs are off by gamma_hidden * sum |x||W| (their
    // absolute-value products); silu has slope <= 1.1 and rounds within 5u (exp, add, divide);
    // the product adds both errors and one rounding; the down GEMM adds gamma_ffn * sum |h||W|
    // and carries h's error through |W_down|.
    let abs = |m: &[f32]| widen(m).iter().map(|v| v.abs()).collect::<Vec<_>>();
    let (wg, wu, wd) = (abs(mlp.w_gate()), abs(mlp.w_up()), abs(mlp.w_down()));
    let (g_w, u_w) = (widen(mlp.w_gate()), widen(mlp.w_up()));
    for t in 0..tokens {
        let xt = widen(&x[t * hidden..(t + 1) * hidden]);
        let mut h = vec![0f64; ffn];
        let mut h_err = vec![0f64; ffn];
        for f in 0..ffn {
            let (mut g, mut u, mut ga, mut ua) = (0.0, 0.0, 0.0, 0.0);
            for c in 0..hidden {
                g += xt[c] * g_w[c * ffn + f];
                u += xt[c] * u_w[c * ffn + f];
                ga += xt[c].abs() * wg[c * ffn + f];
                ua += xt[c].abs() * wu[c * ffn + f];
            }
            let (eg, eu) = (gamma(hidden) * ga, gamma(hidden) * ua);
            let s = g / (1.0 + (-g).exp());
            let es = 1.1 * eg + 5.0 * U * (s.abs() + 1.1 * eg);
            h[f] = s * u;
            h_err[f] = s.abs() * eu
                + (u.abs() + eu) * es
                + U * (h[f].abs() + s.abs() * eu + (u.abs() + eu) * es);
        }
        for c in 0..hidden {
            let (mut mag, mut carried) = (0.0, 0.0);
            for f in 0..ffn {
                mag += (h[f].abs() + h_err[f]) * wd[f * hidden + c];
                carried += h_err[f] * wd[f * hidden + c];
            }
            let bound = gamma(ffn) * mag + carried;
            let (gv, wv) = (f64::from(got[t * hidden + c]), want[t * hidden + c]);
            assert!(
                (gv - wv).abs() <= bound,
                "y[{t}, {c}]: {gv} vs {wv}, bound {bound:e}"
            );
        }
    }
    assert!(mlp.forward(&x[1..]).is_err());
    assert!(SwigluMlp::new(4, 4, vec![0.0; 16], vec![0.0; 15], vec![0.0; 16]).is_err());
}

#[test]
fn rotary_matches_the_reference_and_inverts() {
    let mut row = RowBuilder::new();
    row.prefix_completions(9, &[5, 7]).unwrap();
    row.document(4).unwrap();
    let row = row.finish(32).unwrap();
    let positions = row.positions();
    let (heads, d, stride) = (3, 16, 3 * 16 + 8); // 8 extra elements per token are not heads
    let table = RotaryTable::for_positions(d, positions, DEFAULT_THETA).unwrap();
    let x = random(positions.len() * stride, 11);
    let mut y = x.clone();
    apply_rotary(
        &mut y,
        stride,
        heads,
        positions,
        &table,
        RotaryDirection::Forward,
    )
    .unwrap();
    let dense = |v: &[f32]| -> Vec<f32> {
        v.chunks_exact(stride)
            .flat_map(|t| t[..heads * d].iter().copied())
            .collect()
    };
    let want = reference::rotary(
        &dense(&x),
        heads,
        d,
        positions,
        DEFAULT_THETA,
        RotaryDirection::Forward,
    )
    .unwrap();
    // Each output is x0 c - x1 s: the table's cos/sin are rounded once from f64 (u/2 each), the
    // two products and the difference round once each: 4u (|x0| + |x1|) covers all of it.
    let xd = dense(&x);
    let half = d / 2;
    check_max("rotary", &dense(&y), &want, |e| {
        let (t_h, i) = (e / d * d, e % half);
        4.0 * U * (f64::from(xd[t_h + i]).abs() + f64::from(xd[t_h + i + half]).abs())
    });
    // Elements outside the heads are untouched; the inverse gives x back within the same bound.
    for t in 0..positions.len() {
        assert_eq!(
            &y[t * stride + heads * d..(t + 1) * stride],
            &x[t * stride + heads * d..(t + 1) * stride]
        );
    }
    apply_rotary(
        &mut y,
        stride,
        heads,
        positions,
        &table,
        RotaryDirection::Inverse,
    )
    .unwrap();
    for (a, b) in y.iter().zip(&x) {
        assert!((a - b).abs() <= 16.0 * f32::EPSILON, "{a} vs {b}");
    }
    let short = RotaryTable::new(d, 3, DEFAULT_THETA).unwrap();
    assert!(apply_rotary(
        &mut y,
        stride,
        heads,
        positions,
        &short,
        RotaryDirection::Forward
    )
    .is_err());
    assert!(apply_rotary(
        &mut y,
        heads * d - 1,
        heads,
        positions,
        &table,
        RotaryDirection::Forward
    )
    .is_err());
}

#[test]
fn attention_layer_is_its_tested_pieces() {
    // The layer is the composition of pieces tested above; it must equal them bit for bit.
    let vis = mixed_rows();
    let mut positions = Vec::new();
    for r in 0..2 {
        let row = if r == 0 { 40 } else { 33 };
        // Any in-range ids exercise the plumbing; real ones come from the layout.
        positions.extend((0..120).map(|t| (t * 7 + row) % 90));
    }
    let dims = LayerDims {
        hidden: 64,
        q_heads: 4,
        kv_heads: 2,
        head_dim: 16,
    };
    let layer = AttentionLayer::random(dims, 5).unwrap().with_threads(2);
    let table = RotaryTable::for_positions(16, &positions, DEFAULT_THETA).unwrap();
    let cpu = CpuAttention::new(vis.clone(), TileShape::new(16, 16).unwrap()).unwrap();
    let tokens = vis.rows() * vis.n();
    let x = random(tokens * dims.hidden, 6);
    let got = layer.forward(&cpu, &x, &positions, &table).unwrap();

    let width = dims.qkv_width();
    let mut qkv = matmul(
        &x,
        layer.w_qkv(),
        MatShape {
            m: tokens,
            k: 64,
            n: width,
        },
        1,
    )
    .unwrap();
    apply_rotary(
        &mut qkv,
        width,
        6,
        &positions,
        &table,
        RotaryDirection::Forward,
    )
    .unwrap();
    let cols = |a: usize, b: usize| -> Vec<f32> {
        qkv.chunks_exact(width)
            .flat_map(|t| t[a * 16..b * 16].iter().copied())
            .collect()
    };
    let shape = AttnShape {
        rows: 2,
        n: 120,
        q_heads: 4,
        kv_heads: 2,
        head_dim: 16,
    };
    let out = cpu
        .forward(&shape, &cols(0, 4), &cols(4, 6), &cols(6, 8), 0.25)
        .unwrap();
    let want = matmul(
        &out.o,
        layer.w_o(),
        MatShape {
            m: tokens,
            k: 64,
            n: 64,
        },
        1,
    )
    .unwrap();
    assert_eq!(got, want);
    assert!(layer.forward(&cpu, &x, &positions[1..], &table).is_err());
}
