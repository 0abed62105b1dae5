//! The point of sharing a prefix: for prefix + k samples and for trees, attention over the shared
//! row gives every token exactly what it gets in its own unshared prompt+completion sequence (or
//! root-to-leaf path), and the gradients of a shared token are the sum over its unshared copies.
//!
//! Random q/k/v per shared token are gathered into each unshared sequence with the builders'
//! index map; a random dO per unshared token is summed into the shared row (the shared row's loss
//! is the sum of the unshared losses). Both sides run the f64 reference.
//!
//! Tolerances: forward sums run over the same keys in the same order on both sides, so O and LSE
//! would be bit-identical; gradients of shared tokens add the copies in another order. 1e-10
//! relative (per token and head) covers f64 rounding of a few hundred terms with a wide margin
//! while a single misrouted key or copy shows up at order 1.

use crate::common;

use prefix_attn::layout::{PairedSeq, Row};
use prefix_attn::mask::VisEnd;
use prefix_attn::reference::{backward, forward, rel_l2_error};
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOL: f64 = 1e-10;

fn random_values(rng: &mut StdRng, len: usize) -> Vec<f64> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Per-token slices of a `[rows, n, heads, d]` tensor.
fn token<'a>(t: &'a [f64], shape: &AttnShape, heads: usize, r: usize, s: usize) -> &'a [f64] {
    let w = heads * shape.head_dim;
    let at = (r * shape.n + s) * w;
    &t[at..at + w]
}

fn token_mut<'a>(
    t: &'a mut [f64],
    shape: &AttnShape,
    heads: usize,
    r: usize,
    s: usize,
) -> &'a mut [f64] {
    let w = heads * shape.head_dim;
    let at = (r * shape.n + s) * w;
    &mut t[at..at + w]
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    let err = rel_l2_error(got, want);
    assert!(
        err <= TOL,
        "{what}: rel l2 error {err:e}\n got {got:?}\nwant {want:?}"
    );
}

fn check_batch(rows: &[Row], q_heads: usize, kv_heads: usize, d: usize, rng: &mut StdRng) {
    let n = rows[0].len();
    let shape = AttnShape {
        rows: rows.len(),
        n,
        q_heads,
        kv_heads,
        head_dim: d,
    };
    let vis = VisEnd::from_rows(&rows.iter().map(|r| r.vis_end()).collect::<Vec<_>>()).unwrap();
    let scale = 0.7;
    let (qw, kw) = (q_heads * d, kv_heads * d);
    let q = random_values(rng, shape.q_len());
    let k = random_values(rng, shape.kv_len());
    let v = random_values(rng, shape.kv_len());

    // Unshared sequences with their own dO; the shared dO of a token is the sum over its copies.
    let seqs: Vec<(usize, PairedSeq)> = rows
        .iter()
        .enumerate()
        .flat_map(|(r, row)| row.paired().into_iter().map(move |s| (r, s)))
        .collect();
    let seq_d_o: Vec<Vec<f64>> = seqs
        .iter()
        .map(|(_, s)| random_values(rng, s.len() * qw))
        .collect();
    let mut d_o = vec![0.0; shape.q_len()];
    for ((r, seq), g) in seqs.iter().zip(&seq_d_o) {
        for (t, &s) in seq.shared.iter().enumerate() {
            for (acc, x) in token_mut(&mut d_o, &shape, q_heads, *r, s)
                .iter_mut()
                .zip(&g[t * qw..(t + 1) * qw])
            {
                *acc += x;
            }
        }
    }

    let fwd = forward(&shape, &vis, &q, &k, &v, scale).unwrap();
    let bwd = backward(&shape, &vis, &q, &k, &v, &d_o, scale).unwrap();

    let mut want_dq = vec![0.0; shape.q_len()];
    let mut want_dk = vec![0.0; shape.kv_len()];
    let mut want_dv = vec![0.0; shape.kv_len()];
    for ((r, seq), g) in seqs.iter().zip(&seq_d_o) {
        let r = *r;
        let len = seq.len();
        let one = AttnShape {
            rows: 1,
            n: len,
            ..shape
        };
        let one_vis = VisEnd::new(len, seq.causal_vis_end(len)).unwrap();
        let row_slice = |t: &[f64], w: usize| t[r * n * w..(r + 1) * n * w].to_vec();
        let sq = seq.gather(&row_slice(&q, qw), qw);
        let sk = seq.gather(&row_slice(&k, kw), kw);
        let sv = seq.gather(&row_slice(&v, kw), kw);
        let f1 = forward(&one, &one_vis, &sq, &sk, &sv, scale).unwrap();
        let b1 = backward(&one, &one_vis, &sq, &sk, &sv, g, scale).unwrap();
        for (t, &s) in seq.shared.iter().enumerate() {
            let label = format!(
                "row {r} token {s} (unshared item {} leaf {} t {t})",
                seq.item, seq.leaf
            );
            assert_close(
                token(&fwd.o, &shape, q_heads, r, s),
                &f1.o[t * qw..(t + 1) * qw],
                &format!("O of {label}"),
            );
            for h in 0..q_heads {
                let got = fwd.lse[(r * q_heads + h) * n + s];
                let want = f1.lse[h * len + t];
                assert_close(&[got], &[want], &format!("LSE head {h} of {label}"));
            }
            let add = |acc: &mut [f64], x: &[f64]| acc.iter_mut().zip(x).for_each(|(a, b)| *a += b);
            add(
                token_mut(&mut want_dq, &shape, q_heads, r, s),
                &b1.dq[t * qw..(t + 1) * qw],
            );
            add(
                token_mut(&mut want_dk, &shape, kv_heads, r, s),
                &b1.dk[t * kw..(t + 1) * kw],
            );
            add(
                token_mut(&mut want_dv, &shape, kv_heads, r, s),
                &b1.dv[t * kw..(t + 1) * kw],
            );
        }
    }

    // Every token, padding included (padding: O 0, LSE -inf, no gradient on either side).
    for (r, row) in rows.iter().enumerate() {
        for s in 0..n {
            let label = format!("row {r} token {s} {:?}", row.tokens()[s]);
            if row.tokens()[s].item.is_none() {
                assert!(token(&fwd.o, &shape, q_heads, r, s)
                    .iter()
                    .all(|&x| x == 0.0));
                assert!(
                    (0..q_heads).all(|h| fwd.lse[(r * q_heads + h) * n + s] == f64::NEG_INFINITY)
                );
            }
            for (got, want, heads, what) in [
                (&bwd.dq, &want_dq, q_heads, "dQ"),
                (&bwd.dk, &want_dk, kv_heads, "dK"),
                (&bwd.dv, &want_dv, kv_heads, "dV"),
            ] {
                assert_close(
                    token(got, &shape, heads, r, s),
                    token(want, &shape, heads, r, s),
                    &format!("{what} of {label}"),
                );
            }
        }
    }
}

#[test]
fn prefix_k_samples_equal_their_unshared_sequences() {
    let mut rng = StdRng::seed_from_u64(0xe9_01);
    for _ in 0..12 {
        let mut b = prefix_attn::layout::RowBuilder::new();
        for _ in 0..rng.random_range(1..=3) {
            let (p, c) = common::random_prefix_k(&mut rng, 6, 9);
            b.prefix_completions(p, &c).unwrap();
        }
        let n = b.len() + rng.random_range(0..4);
        check_batch(&[b.finish(n).unwrap()], 4, 2, 8, &mut rng);
    }
}

#[test]
fn trees_equal_their_root_to_leaf_paths() {
    let mut rng = StdRng::seed_from_u64(0xe9_02);
    for _ in 0..12 {
        let mut b = prefix_attn::layout::RowBuilder::new();
        for _ in 0..rng.random_range(1..=2) {
            b.tree(common::random_tree(&mut rng, 8, 7)).unwrap();
        }
        let n = b.len() + rng.random_range(0..4);
        check_batch(&[b.finish(n).unwrap()], 6, 3, 16, &mut rng);
    }
}

#[test]
fn mixed_packed_batches_with_gqa() {
    let mut rng = StdRng::seed_from_u64(0xe9_03);
    for (q_heads, kv_heads, d) in [(4, 2, 8), (3, 1, 16), (2, 2, 4), (8, 1, 8)] {
        for _ in 0..4 {
            let rows = common::random_batch(&mut rng, 3, 60, 6, 5);
            check_batch(&rows, q_heads, kv_heads, d, &mut rng);
        }
    }
}
