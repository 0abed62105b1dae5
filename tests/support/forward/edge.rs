//! Edge cases of the forward kernel beyond the covering matrix, shared by the emulator
//! (tests/forward/edge_cases.rs, every case) and the device (tests/gpu/forward.rs, a subset):
//! arbitrary valid `vis_end` (non-nested visibility intervals, not from any builder), lengths at
//! tile boundaries, padding at tile granularity, large score magnitudes, tiny softmax scales,
//! FULL / PARTIAL / EMPTY checkerboards, GQA 8:1 and odd head counts, head-major strided views
//! and batches of differently shaped rows.
//!
//! Each family is a function returning its cases, so both executors run the very same rows,
//! seeds and input distributions; the executors only differ in how they run one [`Edge`].

use half::{bf16, f16};
use prefix_attn::attention::Strides;
use prefix_attn::mask::VisEnd;
use prefix_attn::reference::Element;
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cases::Dtype;
use super::check::Inputs;
use super::masks::{causal, packed, prefix_groups};

/// Memory order of Q, K, V and O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[rows, n, heads, d]`, as the matrix runs.
    Dense,
    /// `[rows, heads, n, d]`: `Strides { row: heads*n*d, token: d, head: n*d }`.
    HeadMajor,
}

/// One edge case: rows of `vis_end`, heads, dtype and how the inputs are drawn.
#[derive(Debug, Clone)]
pub struct Edge {
    pub name: String,
    pub rows: Vec<Vec<i32>>,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub dtype: Dtype,
    pub seed: u64,
    /// Q, K and V are uniform in [-amp, amp) before rounding.
    pub amps: [f64; 3],
    /// Key token j of every row is multiplied by `ramp.0 + (ramp.1 - ramp.0) * j / n` before
    /// rounding: an increasing ramp raises the running max tile after tile (every rescale factor
    /// far below 1, many underflowing), a decreasing one puts the max in the first tile.
    pub key_ramp: (f64, f64),
    pub scale: f32,
    pub layout: Layout,
}

impl Edge {
    /// The matrix's input distribution (scores spread over a few units) and scale 1/sqrt(d).
    pub fn new(
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

    pub fn dtype(mut self, dtype: Dtype) -> Self {
        self.dtype = dtype;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn head_major(mut self) -> Self {
        self.layout = Layout::HeadMajor;
        self
    }

    pub fn shape(&self) -> AttnShape {
        AttnShape {
            rows: self.rows.len(),
            n: self.rows[0].len(),
            q_heads: self.q_heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
        }
    }

    /// Dense inputs rounded to `T` (Q/O `[rows, n, q_heads, d]`, K/V `[rows, n, kv_heads, d]`,
    /// whatever the layout the kernel is given).
    pub fn inputs<T: Element>(&self) -> Inputs<T> {
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

/// Runs every case with the executor of its dtype (`bf16` / `f16`, each returning the first
/// failure of a case) and fails with all failures at once.
pub fn run_all(
    cases: &[Edge],
    run_bf16: impl Fn(&Edge) -> Result<(), String>,
    run_f16: impl Fn(&Edge) -> Result<(), String>,
) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|e| {
            match e.dtype {
                Dtype::Bf16 => run_bf16(e),
                Dtype::F16 => run_f16(e),
            }
            .err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `[rows, n, heads, d]` -> `[rows, heads, n, d]`.
pub fn to_head_major<T: Copy>(dense: &[T], sh: &AttnShape, heads: usize) -> Vec<T> {
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
pub fn from_head_major<T: Copy>(hm: &[T], sh: &AttnShape, heads: usize) -> Vec<T> {
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

/// `dense` in `layout`'s memory order.
pub fn to_layout<T: Copy>(layout: Layout, dense: &[T], sh: &AttnShape, heads: usize) -> Vec<T> {
    match layout {
        Layout::Dense => dense.to_vec(),
        Layout::HeadMajor => to_head_major(dense, sh, heads),
    }
}

/// A tensor in `layout`'s memory order back to dense `[rows, n, heads, d]`.
pub fn from_layout<T: Copy>(layout: Layout, data: &[T], sh: &AttnShape, heads: usize) -> Vec<T> {
    match layout {
        Layout::Dense => data.to_vec(),
        Layout::HeadMajor => from_head_major(data, sh, heads),
    }
}

pub fn strides(layout: Layout, sh: &AttnShape, heads: usize) -> Strides {
    match layout {
        Layout::Dense => Strides::dense(sh.n, heads, sh.head_dim),
        Layout::HeadMajor => Strides {
            row: heads * sh.n * sh.head_dim,
            token: sh.head_dim,
            head: sh.n * sh.head_dim,
        },
    }
}

/// A valid row not from any builder: each key is padding with probability `pad`, otherwise
/// `vis_end[j]` is uniform in [j, n] (so padding can also come out of the draw). The intervals
/// [j, vis_end[j]) are not nested, unlike every builder layout.
pub fn random_row(rng: &mut StdRng, n: usize, pad: f64) -> Vec<i32> {
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
pub fn max_scaled_score<T: Element>(inp: &Inputs<T>) -> f64 {
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

/// [`max_scaled_score`] of an edge case's inputs rounded to its dtype.
pub fn max_scaled_score_of(e: &Edge) -> f64 {
    match e.dtype {
        Dtype::Bf16 => max_scaled_score(&e.inputs::<bf16>()),
        Dtype::F16 => max_scaled_score(&e.inputs::<f16>()),
    }
}

/// Arbitrary valid `vis_end` at every length around the 64-token tile (n = 1, 15, 63, 64, 65,
/// 130, 200), one seed per length, a row without and one with padding mixed in, both dtypes and
/// head dims, GQA 1/2/4.
pub fn random_vis_end_at_tile_boundaries() -> Vec<Edge> {
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
    cases
}

/// More seeds (indexed 0..4) at one ragged length n = 130, where every (q tile, k tile) below
/// the diagonal is PARTIAL with non-nested intervals: padding probability 0.1 + 0.25 * index in
/// the first row, 0.9 (mostly padding) in the second.
pub fn random_vis_end_padding_mixes(indices: std::ops::Range<u64>) -> Vec<Edge> {
    let n = 130;
    indices
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
        .collect()
}

/// n = 1 (one query, seen or padding); then one case of three rows at n = 200: only the last
/// query sees anything (one key: itself); the first k tile is all padding but later tiles are
/// not; the middle k tile (64..128) is all padding.
pub fn tiny_rows_and_padding_tiles() -> Vec<Edge> {
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
    vec![
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
    ]
}

/// |scale * q.k| up to ~140-166 (q and k uniform in [-8, 8) with a key ramp): rising max (every
/// rescale factor underflows), falling max (later tiles contribute almost nothing) and flat,
/// both dtypes and head dims, over a causal row and a row of two documents at n = 200.
pub fn large_score_magnitudes() -> Vec<Edge> {
    let rows = vec![causal(200, 200), packed(&[70, 130], 200)];
    let mk = |name: &str, dtype, d, ramp: (f64, f64), seed| {
        let mut e = Edge::new(name, rows.clone(), (2, 1), d)
            .dtype(dtype)
            .seed(seed);
        e.amps = [8.0, 8.0, 1.0];
        e.key_ramp = ramp;
        e
    };
    vec![
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
    ]
}

/// Scales 2^-20 and 1e-40 (an f32 subnormal, whose scale * log2(e) is still non-zero): the
/// softmax is almost uniform.
pub fn tiny_softmax_scales() -> Vec<Edge> {
    let rows = vec![prefix_groups(&[(40, &[30, 50])], 130)];
    [(2f32.powi(-20), 31u64), (1e-40, 32)]
        .iter()
        .map(|&(scale, seed)| {
            let mut e = Edge::new(format!("scale {scale:e}"), rows.clone(), (2, 2), 64)
                .dtype(Dtype::F16)
                .seed(seed);
            e.scale = scale;
            e
        })
        .collect()
}

/// Rows at n = 256 whose (q tile, k tile) classes form checkerboards of FULL, PARTIAL and EMPTY.
pub fn checkerboard_rows() -> Vec<Vec<i32>> {
    vec![
        // Tile-aligned documents: FULL below the diagonal inside each document.
        packed(&[128, 64, 64], 256),
        // Tile-aligned prompt + completions: a completion's q tiles see the prompt tiles FULL,
        // their siblings' tiles EMPTY, their own diagonal PARTIAL.
        prefix_groups(&[(128, &[64, 64])], 256),
        // The same, shifted by half a tile: the prompt boundary cuts tiles (PARTIAL next to FULL).
        prefix_groups(&[(96, &[64, 96])], 256),
    ]
}

/// [`checkerboard_rows`] at bf16 d128 and at f16 d64 with GQA 2.
pub fn class_checkerboards() -> Vec<Edge> {
    let rows = checkerboard_rows();
    vec![
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
    ]
}

/// GQA 8:1 on random rows, and q_heads == kv_heads with an odd head count.
pub fn gqa_8_to_1_and_odd_heads() -> Vec<Edge> {
    let mut rng = StdRng::seed_from_u64(0x6a);
    let rows = vec![random_row(&mut rng, 100, 0.2), causal(77, 100)];
    vec![
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
    ]
}

/// Q, K, V and O head-major (`[rows, heads, n, d]` memory), with a batch of differently shaped
/// rows so the heaviest-first order interleaves rows.
pub fn head_major_mixed_batch(dtype: Dtype, head_dim: usize, seed: u64) -> Edge {
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

/// [`head_major_mixed_batch`] with large scores and a rising key ramp: the race probe (the same
/// bits on every schedule / launch).
pub fn head_major_large_scores(seed: u64) -> Edge {
    let mut e = head_major_mixed_batch(Dtype::F16, 64, seed);
    e.amps = [8.0, 8.0, 1.0];
    e.key_ramp = (0.5, 2.0);
    e
}
