//! Shared helpers of the reference tests: seeded inputs, `vis_end` of each mask family written
//! out by hand, and a naive dense-mask attention written independently of the crate.
#![allow(dead_code)] // each test crate uses a different subset

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `len` values uniform in [-1, 1) (never all zero; exactly zero with probability ~0).
pub fn random_values(rng: &mut StdRng, len: usize) -> Vec<f64> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Every key is seen by every later query.
pub fn causal(n: usize) -> Vec<i32> {
    vec![n as i32; n]
}

/// Packed documents of the given lengths, then padding up to `n`: a token is seen up to the end
/// of its document.
pub fn documents(lens: &[usize], n: usize) -> Vec<i32> {
    let mut out = Vec::new();
    for &len in lens {
        let end = (out.len() + len) as i32;
        out.extend(std::iter::repeat_n(end, len));
    }
    pad_to(out, n)
}

/// One prompt followed by its completions, then padding up to `n`: prompt tokens are seen up to
/// the end of the sample, completion tokens up to the end of their own completion.
pub fn prefix_completions(prefix: usize, completions: &[usize], n: usize) -> Vec<i32> {
    let sample_end = (prefix + completions.iter().sum::<usize>()) as i32;
    let mut out = vec![sample_end; prefix];
    for &len in completions {
        let end = (out.len() + len) as i32;
        out.extend(std::iter::repeat_n(end, len));
    }
    pad_to(out, n)
}

/// Padding tokens (`vis_end[j] = j`) after `content` up to `n`.
pub fn pad_to(mut content: Vec<i32>, n: usize) -> Vec<i32> {
    assert!(content.len() <= n);
    while content.len() < n {
        content.push(content.len() as i32);
    }
    content
}

/// A tree in DFS preorder, each node a segment of tokens seen up to the end of its subtree:
/// root [0,3) with children A [3,5) and B [10,13); A has children A1 [5,7) and A2 [7,10);
/// then padding up to `n` (>= 13).
pub fn tree(n: usize) -> Vec<i32> {
    let mut out = Vec::new();
    for (len, subtree_end) in [(3, 13), (2, 10), (2, 7), (3, 10), (3, 13)] {
        out.extend(std::iter::repeat_n(subtree_end, len));
    }
    pad_to(out, n)
}

/// Any valid `vis_end`: `vis_end[j]` uniform in `[j, n]`.
pub fn random_vis_end(rng: &mut StdRng, n: usize) -> Vec<i32> {
    (0..n).map(|j| rng.random_range(j..=n) as i32).collect()
}

/// Dense attention of one call, straight from the definitions: for each row, head and query,
/// scores over all `n` keys, masked ones set aside by the rule written out here, softmax by the
/// largest visible score. Returns `(o, lse)` in the crate's layouts.
#[allow(clippy::too_many_arguments)]
pub fn naive_forward(
    rows: usize,
    n: usize,
    q_heads: usize,
    kv_heads: usize,
    d: usize,
    vis_end: &[i32],
    q: &[f64],
    k: &[f64],
    v: &[f64],
    scale: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut o = vec![0.0; rows * n * q_heads * d];
    let mut lse = vec![0.0; rows * q_heads * n];
    let group = q_heads / kv_heads;
    for r in 0..rows {
        let row_vis = &vis_end[r * n..(r + 1) * n];
        let sees = |i: usize, j: usize| j <= i && (i as i32) < row_vis[j];
        for h in 0..q_heads {
            let g = h / group;
            let qi = |i: usize, c: usize| q[((r * n + i) * q_heads + h) * d + c];
            let kj = |j: usize, c: usize| k[((r * n + j) * kv_heads + g) * d + c];
            let vj = |j: usize, c: usize| v[((r * n + j) * kv_heads + g) * d + c];
            for i in 0..n {
                let scores: Vec<Option<f64>> = (0..n)
                    .map(|j| {
                        sees(i, j).then(|| scale * (0..d).map(|c| qi(i, c) * kj(j, c)).sum::<f64>())
                    })
                    .collect();
                let max = scores
                    .iter()
                    .flatten()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max);
                let lse_at = (r * q_heads + h) * n + i;
                if max == f64::NEG_INFINITY {
                    lse[lse_at] = f64::NEG_INFINITY;
                    continue;
                }
                let weights: Vec<f64> = scores
                    .iter()
                    .map(|s| s.map_or(0.0, |s| (s - max).exp()))
                    .collect();
                let total: f64 = weights.iter().sum();
                lse[lse_at] = max + total.ln();
                for c in 0..d {
                    let acc: f64 = (0..n).map(|j| weights[j] * vj(j, c)).sum();
                    o[((r * n + i) * q_heads + h) * d + c] = acc / total;
                }
            }
        }
    }
    (o, lse)
}
