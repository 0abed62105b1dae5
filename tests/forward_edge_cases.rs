//! Edge cases of the forward kernel on the CPU emulator that the covering matrix
//! (tests/forward_emulated.rs) does not reach: arbitrary valid `vis_end` (non-nested visibility
//! intervals, not from any builder), n = 1 and other tile-boundary lengths, rows whose first k
//! tile is all padding, a row where only the last query sees anything, score magnitudes that
//! drive the running-max rescale and exp2 into underflow, tiny softmax scales, tile-aligned
//! documents (FULL tiles) and checkerboards of FULL / PARTIAL / EMPTY tiles, GQA 8:1 and odd
//! head counts, head-major strided views for Q, K, V and O, and batches of differently shaped
//! rows (so the heaviest-first launch order interleaves rows).
//!
//! Every case is compared with the f64 reference on the same rounded inputs with the tolerances
//! of the matrix (tests/forward_support/check.rs, docs/forward.md), never looser; outputs are
//! poisoned and guarded, so an element the kernel does not write or a write outside its view
//! fails. Shapes stay small: the emulated suite runs on 2 CI cores.

mod forward_support;

use half::{bf16, f16};
use prefix_attn::attention::{forward_emulated, HostTensors, Strides, View};
use prefix_attn::emu::{GuardedBuf, Schedule};
use prefix_attn::mask::{TileClass, VisEnd};
use prefix_attn::plan::Plan;
use prefix_attn::reference::Element;
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use forward_support::cases::Dtype;
use forward_support::check::{check, Inputs, KernelElem, POISON_F32};
use forward_support::masks::{causal, packed, prefix_groups};

/// Memory order of Q, K, V and O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[rows, n, heads, d]`, as the matrix runs.
    Dense,
    /// `[rows, heads, n, d]`: `Strides { row: heads*n*d, token: d, head: n*d }`.
    HeadMajor,
}

/// One edge case: rows of `vis_end`, heads, dtype and how the inputs are drawn.
#[derive(Debug, Clone)]
struct Edge {
    name: String,
    rows: Vec<Vec<i32>>,
    q_heads: usize,
    kv_heads: usize,
    head_dim: usize,
    dtype: Dtype,
    seed: u64,
    /// Q, K and V are uniform in [-amp, amp) before rounding.
    amps: [f64; 3],
    /// Key token j of every row is multiplied by `ramp.0 + (ramp.1 - ramp.0) * j / n` before
    /// rounding: an increasing ramp raises the running max tile after tile (every rescale factor
    /// far below 1, many underflowing), a decreasing one puts the max in the first tile.
    key_ramp: (f64, f64),
    scale: f32,
    layout: Layout,
}

impl Edge {
    /// The matrix's input distribution (scores spread over a few units) and scale 1/sqrt(d).
    fn new(
        name: impl Into<String>,
        rows: Vec<Vec<i32>>,
        heads: (usize, usize),
        head_dim: usize,
    ) -> Self {
        Edge {
            name: name.into(),
            rows,
            q_heads: heads.0,
            kv_heads: heads.1,
            head_dim,
            dtype: Dtype::Bf16,
            seed: 1,
            amps: [2.5, 1.7, 1.0],
            key_ramp: (1.0, 1.0),
            scale: 1.0 / (head_dim as f32).sqrt(),
            layout: Layout::Dense,
        }
    }

    fn dtype(mut self, dtype: Dtype) -> Self {
        self.dtype = dtype;
        self
    }

    fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn head_major(mut self) -> Self {
        self.layout = Layout::HeadMajor;
        self
    }

    fn shape(&self) -> AttnShape {
        AttnShape {
            rows: self.rows.len(),
            n: self.rows[0].len(),
            q_heads: self.q_heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
        }
    }

    fn inputs<T: Element>(&self) -> Inputs<T> {
        let shape = self.shape();
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut draw = |len: usize, amp: f64, ramp: (f64, f64), heads: usize| -> Vec<T> {
            (0..len)
                .map(|idx| {
                    let j = idx / (heads * shape.head_dim) % shape.n;
                    let w = ramp.0 + (ramp.1 - ramp.0) * j as f64 / shape.n as f64;
                    T::from_f64(w * rng.random_range(-amp..amp))
                })
                .collect()
        };
        let q = draw(shape.q_len(), self.amps[0], (1.0, 1.0), shape.q_heads);
        let k = draw(shape.kv_len(), self.amps[1], self.key_ramp, shape.kv_heads);
        let v = draw(shape.kv_len(), self.amps[2], (1.0, 1.0), shape.kv_heads);
        Inputs {
            shape,
            vis_end: VisEnd::from_rows(&self.rows).expect("valid edge case"),
            q,
            k,
            v,
            scale: self.scale,
        }
    }
}

/// `[rows, n, heads, d]` -> `[rows, heads, n, d]`.
fn to_head_major<T: Copy>(dense: &[T], sh: &AttnShape, heads: usize) -> Vec<T> {
    let d = sh.head_dim;
    let mut out = Vec::with_capacity(dense.len());
    for r in 0..sh.rows {
        for h in 0..heads {
            for i in 0..sh.n {
                let at = ((r * sh.n + i) * heads + h) * d;
                out.extend_from_slice(&dense[at..at + d]);
            }
        }
    }
    out
}

/// `[rows, heads, n, d]` -> `[rows, n, heads, d]`.
fn from_head_major<T: Copy>(hm: &[T], sh: &AttnShape, heads: usize) -> Vec<T> {
    let d = sh.head_dim;
    let mut out = Vec::with_capacity(hm.len());
    for r in 0..sh.rows {
        for i in 0..sh.n {
            for h in 0..heads {
                let at = ((r * heads + h) * sh.n + i) * d;
                out.extend_from_slice(&hm[at..at + d]);
            }
        }
    }
    out
}

fn strides(layout: Layout, sh: &AttnShape, heads: usize) -> Strides {
    match layout {
        Layout::Dense => Strides::dense(sh.n, heads, sh.head_dim),
        Layout::HeadMajor => Strides {
            row: heads * sh.n * sh.head_dim,
            token: sh.head_dim,
            head: sh.n * sh.head_dim,
        },
    }
}

/// Runs the kernel on the emulator with poisoned, guarded outputs; returns dense O and LSE.
fn run<T: KernelElem + prefix_attn::emu::Element>(
    layout: Layout,
    inp: &Inputs<T>,
    schedule: Schedule,
) -> (Vec<T>, Vec<f32>) {
    let sh = &inp.shape;
    let put = |dense: &[T], heads: usize| match layout {
        Layout::Dense => GuardedBuf::from_slice(dense),
        Layout::HeadMajor => GuardedBuf::from_slice(&to_head_major(dense, sh, heads)),
    };
    let (q, k, v) = (
        put(&inp.q, sh.q_heads),
        put(&inp.k, sh.kv_heads),
        put(&inp.v, sh.kv_heads),
    );
    let mut o = GuardedBuf::filled(sh.q_len(), T::poison());
    let mut lse = GuardedBuf::filled(sh.lse_len(), POISON_F32);
    let plan = Plan::new(inp.vis_end.clone()).unwrap();
    forward_emulated(
        &plan,
        sh,
        HostTensors {
            q: View::new(q.as_slice(), strides(layout, sh, sh.q_heads)),
            k: View::new(k.as_slice(), strides(layout, sh, sh.kv_heads)),
            v: View::new(v.as_slice(), strides(layout, sh, sh.kv_heads)),
            o: View::new(o.as_mut_slice(), strides(layout, sh, sh.q_heads)),
            lse: lse.as_mut_slice(),
        },
        inp.scale,
        schedule,
    )
    .unwrap();
    o.check_guards("o").unwrap();
    lse.check_guards("lse").unwrap();
    let o = match layout {
        Layout::Dense => o.to_vec(),
        Layout::HeadMajor => from_head_major(o.as_slice(), sh, sh.q_heads),
    };
    (o, lse.to_vec())
}

fn run_edge<T: KernelElem + prefix_attn::emu::Element>(e: &Edge) -> Result<(), String> {
    let inp = e.inputs::<T>();
    let (o, lse) = run(e.layout, &inp, Schedule::Ascending);
    check(&e.name, e.dtype, &inp, &o, &lse)
}

fn run_all(cases: &[Edge]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|e| {
            match e.dtype {
                Dtype::Bf16 => run_edge::<bf16>(e),
                Dtype::F16 => run_edge::<f16>(e),
            }
            .err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A valid row not from any builder: each key is padding with probability `pad`, otherwise
/// `vis_end[j]` is uniform in [j, n] (so padding can also come out of the draw). The intervals
/// [j, vis_end[j]) are not nested, unlike every builder layout.
fn random_row(rng: &mut StdRng, n: usize, pad: f64) -> Vec<i32> {
    (0..n)
        .map(|j| {
            if rng.random_bool(pad) {
                j as i32
            } else {
                rng.random_range(j..=n) as i32
            }
        })
        .collect()
}

/// The largest |scale * q.k| over visible pairs of the rounded inputs.
fn max_scaled_score<T: Element>(inp: &Inputs<T>) -> f64 {
    let sh = &inp.shape;
    let d = sh.head_dim;
    let mut max = 0.0f64;
    for r in 0..sh.rows {
        let row = inp.vis_end.row(r);
        for h in 0..sh.q_heads {
            let g = h / sh.group();
            for i in 0..sh.n {
                let q = &inp.q[((r * sh.n + i) * sh.q_heads + h) * d..][..d];
                for (j, &end) in row.iter().enumerate().take(i + 1) {
                    if i >= end as usize {
                        continue;
                    }
                    let k = &inp.k[((r * sh.n + j) * sh.kv_heads + g) * d..][..d];
                    let s: f64 = q.iter().zip(k).map(|(a, b)| a.to_f64() * b.to_f64()).sum();
                    max = max.max((f64::from(inp.scale) * s).abs());
                }
            }
        }
    }
    max
}

/// Arbitrary valid `vis_end` at every length around the 64-token tile, several seeds, padding
/// mixed in, both dtypes and head dims, GQA 1/2/4.
#[test]
fn random_vis_end_at_tile_boundary_lengths() {
    let mut cases = Vec::new();
    for (c, &n) in [1usize, 15, 63, 64, 65, 130, 200].iter().enumerate() {
        let seed = 0xed6e + c as u64;
        let mut rng = StdRng::seed_from_u64(seed);
        let rows = vec![random_row(&mut rng, n, 0.0), random_row(&mut rng, n, 0.4)];
        let (heads, d, dtype) = match c % 4 {
            0 => ((2, 2), 64, Dtype::Bf16),
            1 => ((4, 1), 128, Dtype::F16),
            2 => ((2, 1), 64, Dtype::F16),
            _ => ((1, 1), 128, Dtype::Bf16),
        };
        cases.push(
            Edge::new(
                format!("random vis_end n={n}, seed {seed:#x}"),
                rows,
                heads,
                d,
            )
            .dtype(dtype)
            .seed(seed),
        );
    }
    run_all(&cases);
}

/// More seeds at one ragged length, where every (q tile, k tile) below the diagonal is PARTIAL
/// with non-nested intervals, and rows mostly padding.
#[test]
fn random_vis_end_more_seeds_and_padding_mixes() {
    let n = 130;
    let cases: Vec<Edge> = (0..4u64)
        .map(|s| {
            let seed = 0xa11 + s;
            let mut rng = StdRng::seed_from_u64(seed);
            let rows = vec![
                random_row(&mut rng, n, 0.1 + 0.25 * s as f64),
                random_row(&mut rng, n, 0.9),
            ];
            let dtype = if s % 2 == 0 { Dtype::F16 } else { Dtype::Bf16 };
            Edge::new(
                format!("random vis_end mix, seed {seed:#x}"),
                rows,
                (2, 2),
                64,
            )
            .dtype(dtype)
            .seed(seed)
        })
        .collect();
    run_all(&cases);
}

/// n = 1 (one query, seen or padding); a row where only the last query sees anything (one key:
/// itself); a row whose first k tile is all padding but later tiles are not; an all-padding k
/// tile in the middle of a row.
#[test]
fn tiny_rows_and_padding_at_tile_granularity() {
    let n: i32 = 200;
    let only_last: Vec<i32> = (0..n).map(|j| if j == n - 1 { n } else { j }).collect();
    let first_tile_padding: Vec<i32> = (0..n).map(|j| if j < 64 { j } else { n }).collect();
    let middle_tile_padding: Vec<i32> = (0..n)
        .map(|j| match j {
            0..64 => 64,
            64..128 => j,
            _ => n,
        })
        .collect();
    let cases = vec![
        Edge::new("n=1: itself / padding", vec![vec![1], vec![0]], (2, 1), 64).seed(11),
        Edge::new("n=1, f16, d128", vec![vec![1]], (1, 1), 128)
            .dtype(Dtype::F16)
            .seed(12),
        Edge::new(
            "only the last query sees anything; first / middle k tile all padding",
            vec![only_last, first_tile_padding, middle_tile_padding],
            (2, 2),
            64,
        )
        .dtype(Dtype::F16)
        .seed(13),
    ];
    let plan = Plan::new(VisEnd::from_rows(&cases[2].rows).unwrap()).unwrap();
    let m = plan.forward_mask();
    // Row 1: q tile 0 lists nothing, q tiles 1.. never list k tile 0.
    assert_eq!(m.q_list(1, 0).count(), 0);
    assert!((1..m.q_tiles()).all(|qt| m.q_list(1, qt).all(|(kt, _)| kt > 0)));
    // Row 2: q tile 1 lists nothing; q tile 2 lists only k tile 2.
    assert_eq!(m.q_list(2, 1).count(), 0);
    assert_eq!(
        m.q_list(2, 2).map(|(kt, _)| kt).collect::<Vec<_>>(),
        vec![2]
    );
    run_all(&cases);
}

/// |scale * q.k| up to ~100-200: most probabilities underflow in exp2, and with an increasing
/// key ramp the running max jumps at every k tile (rescale factors that underflow to 0); with a
/// decreasing ramp the max sits in the first tile and later tiles contribute almost nothing.
/// f16 inputs stay far inside their range (|q| < 8, |k| < 16). (A rescale factor clamped at
/// 2^-12 instead of underflowing passes the matrix and fails here.)
///
/// Why not larger: the LSE bound (2^-15 absolute) assumes |LSE| < 16; its error grows with
/// |LSE| through fp32 rounding alone (the scores, m * scale, the f32 output itself). Measured
/// on the emulator: ~1.2e-5 to 1.8e-5 at max |scale q.k| ~ 140-165 (these cases), 2.3e-5 at
/// ~185, 4.3e-5 at ~310; at |LSE| >= 256 one f32 ulp is already 2^-15.
#[test]
fn large_score_magnitudes() {
    let rows = vec![causal(200, 200), packed(&[70, 130], 200)];
    let mk = |name: &str, dtype, d, ramp: (f64, f64), seed| {
        let mut e = Edge::new(name, rows.clone(), (2, 1), d)
            .dtype(dtype)
            .seed(seed);
        e.amps = [8.0, 8.0, 1.0];
        e.key_ramp = ramp;
        e
    };
    let cases = vec![
        mk(
            "large scores, rising max, bf16 d64",
            Dtype::Bf16,
            64,
            (0.25, 2.0),
            21,
        ),
        mk(
            "large scores, rising max, f16 d128",
            Dtype::F16,
            128,
            (0.25, 2.0),
            22,
        ),
        mk(
            "large scores, falling max, f16 d64",
            Dtype::F16,
            64,
            (2.0, 0.25),
            23,
        ),
        mk(
            "large scores, flat, bf16 d128",
            Dtype::Bf16,
            128,
            (1.5, 1.5),
            24,
        ),
    ];
    for e in &cases {
        let max = match e.dtype {
            Dtype::Bf16 => max_scaled_score(&e.inputs::<bf16>()),
            Dtype::F16 => max_scaled_score(&e.inputs::<f16>()),
        };
        eprintln!("{}: max |scale q.k| = {max:.1}", e.name);
        assert!(
            (100.0..=200.0).contains(&max),
            "{}: max |scale q.k| = {max}",
            e.name
        );
    }
    run_all(&cases);
}

/// Scales far below 1/sqrt(d): the softmax is almost uniform; the smallest is an f32 subnormal,
/// whose scale * log2(e) is still non-zero.
#[test]
fn tiny_softmax_scales() {
    let rows = vec![prefix_groups(&[(40, &[30, 50])], 130)];
    let cases: Vec<Edge> = [(2f32.powi(-20), 31u64), (1e-40, 32)]
        .iter()
        .map(|&(scale, seed)| {
            let mut e = Edge::new(format!("scale {scale:e}"), rows.clone(), (2, 2), 64)
                .dtype(Dtype::F16)
                .seed(seed);
            e.scale = scale;
            e
        })
        .collect();
    run_all(&cases);
}

/// Documents of exactly 64-token multiples (every tile off the diagonal FULL), and rows whose
/// (q tile, k tile) classes form a checkerboard of FULL, PARTIAL and EMPTY.
#[test]
fn full_tiles_and_class_checkerboards() {
    let rows = vec![
        // Tile-aligned documents: FULL below the diagonal inside each document.
        packed(&[128, 64, 64], 256),
        // Tile-aligned prompt + completions: a completion's q tiles see the prompt tiles FULL,
        // their siblings' tiles EMPTY, their own diagonal PARTIAL.
        prefix_groups(&[(128, &[64, 64])], 256),
        // The same, shifted by half a tile: the prompt boundary cuts tiles (PARTIAL next to FULL).
        prefix_groups(&[(96, &[64, 96])], 256),
    ];
    let plan = Plan::new(VisEnd::from_rows(&rows).unwrap()).unwrap();
    let m = plan.forward_mask();
    let classes = |r: usize| -> Vec<TileClass> {
        (0..4)
            .flat_map(|qt| (0..4).map(move |kt| (qt, kt)))
            .map(|(qt, kt)| m.class(r, qt, kt))
            .collect()
    };
    use TileClass::{Empty as E, Full as F, Partial as P};
    #[rustfmt::skip]
    assert_eq!(classes(0), vec![
        P, E, E, E,
        F, P, E, E,
        E, E, P, E,
        E, E, E, P,
    ]);
    #[rustfmt::skip]
    assert_eq!(classes(1), vec![
        P, E, E, E,
        F, P, E, E,
        F, F, P, E,
        F, F, E, P,
    ]);
    for r in 0..3 {
        let c = classes(r);
        assert!(
            c.contains(&F) && c.contains(&P) && c.contains(&E),
            "row {r}: {c:?}"
        );
    }
    let cases = vec![
        Edge::new(
            "FULL/PARTIAL/EMPTY checkerboards, bf16 d128",
            rows.clone(),
            (2, 2),
            128,
        )
        .seed(41),
        Edge::new(
            "FULL/PARTIAL/EMPTY checkerboards, f16 d64, gqa 2",
            rows,
            (4, 2),
            64,
        )
        .dtype(Dtype::F16)
        .seed(42),
    ];
    run_all(&cases);
}

/// GQA 8:1 on random rows, and q_heads == kv_heads with an odd head count.
#[test]
fn gqa_8_to_1_and_equal_odd_heads() {
    let mut rng = StdRng::seed_from_u64(0x6a);
    let rows = vec![random_row(&mut rng, 100, 0.2), causal(77, 100)];
    let cases = vec![
        Edge::new("gqa 8:1 random rows, f16 d64", rows.clone(), (8, 1), 64)
            .dtype(Dtype::F16)
            .seed(51),
        Edge::new(
            "3 q heads = 3 kv heads random rows, bf16 d128",
            rows,
            (3, 3),
            128,
        )
        .seed(52),
    ];
    run_all(&cases);
}

/// Q, K, V and O head-major (`[rows, heads, n, d]` memory), with a batch of differently shaped
/// rows so the heaviest-first order interleaves rows.
fn head_major_mixed_batch(dtype: Dtype, head_dim: usize, seed: u64) -> Edge {
    let n = 150;
    let mut rng = StdRng::seed_from_u64(seed);
    let rows = vec![
        packed(&[20, 30], n),                 // light: most tiles EMPTY
        causal(n, n),                         // heavy: the last q tile has 3 k tiles
        random_row(&mut rng, n, 0.3),         // arbitrary
        prefix_groups(&[(64, &[40, 46])], n), // shared prompt
    ];
    Edge::new(
        format!("head-major views, mixed rows, {dtype:?} d{head_dim}, gqa 4"),
        rows,
        (4, 1),
        head_dim,
    )
    .dtype(dtype)
    .seed(seed)
    .head_major()
}

#[test]
fn head_major_views_and_mixed_rows() {
    let e = head_major_mixed_batch(Dtype::Bf16, 64, 61);
    // The launch order does interleave rows: not row-major.
    let plan = Plan::new(VisEnd::from_rows(&e.rows).unwrap()).unwrap();
    let order = plan.forward_mask().heaviest_first();
    let q_tiles = plan.forward_mask().q_tiles() as i32;
    assert!(
        order.windows(2).any(|w| w[0] / q_tiles > w[1] / q_tiles),
        "{order:?}"
    );
    run_all(&[e, head_major_mixed_batch(Dtype::F16, 128, 62)]);
}

/// No races on the edge layouts: the same bits under the ascending, descending and random
/// schedules (head-major views, mixed rows with arbitrary `vis_end`, large scores), and each
/// run matches the reference.
#[test]
fn identical_bits_under_every_schedule() {
    let mut e = head_major_mixed_batch(Dtype::F16, 64, 71);
    e.amps = [8.0, 8.0, 1.0];
    e.key_ramp = (0.5, 2.0);
    let inp = e.inputs::<f16>();
    let mut runs = Schedule::all(0xed9e)
        .into_iter()
        .map(|s| (s, run(e.layout, &inp, s)));
    let (_, (base_o, base_lse)) = runs.next().unwrap();
    check(&e.name, e.dtype, &inp, &base_o, &base_lse).unwrap();
    for (s, (o, lse)) in runs {
        let o_diff = base_o
            .iter()
            .zip(&o)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(o_diff, None, "O differs under {s}");
        let lse_diff = base_lse
            .iter()
            .zip(&lse)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(lse_diff, None, "LSE differs under {s}");
    }
}
