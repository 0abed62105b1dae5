//! The point of sharing a prefix, through the kernels (forward + backward on the emulator): a
//! shared row's gradients equal those of its unshared sequences (each root-to-leaf path as its own
//! causal row): a completion token's dQ, dK, dV equal its unshared ones, a prefix token's are the
//! sum over its copies (the shared row's loss is the sum of the unshared losses).
//!
//! Q, K, V per shared token are copied into every unshared sequence; dO is drawn per unshared
//! token on a grid (multiples of 2^-5 in [-1/2, 1/2]) so that its sum over at most 16 copies, the
//! shared token's dO, is exact in bf16 and f16: both sides then have the same exact gradients.
//!
//! Bound: each side is within its derived bound of its exact gradients
//! (`prefix_attn::bounds`, docs/backward.md); summing the unshared copies into shared
//! positions multiplies a Frobenius norm by at most sqrt(most copies of one token), so
//! ||G_shared - sum of copies||_F <= B_shared + sqrt(k_max) * B_unshared.

use crate::backward_support;
use crate::common;
use crate::forward_support;

use half::{bf16, f16};
use prefix_attn::attention::BackwardChoice;
use prefix_attn::bounds::{Grad, LseError};
use prefix_attn::emu::Schedule;
use prefix_attn::layout::{PairedSeq, Row, RowBuilder};
use prefix_attn::mask::VisEnd;
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use backward_support::check::bounds;
use backward_support::run::run;
use forward_support::check::{random_vec, Inputs, KernelElem};
use forward_support::edge::Layout;

/// Per-token slice of a `[rows, n, heads, d]` tensor.
fn token_at(shape: &AttnShape, heads: usize, r: usize, s: usize) -> std::ops::Range<usize> {
    let w = heads * shape.head_dim;
    let at = (r * shape.n + s) * w;
    at..at + w
}

fn check_rows<T: KernelElem + prefix_attn::emu::Element>(
    label: &str,
    rows: &[Row],
    heads: (usize, usize),
    d: usize,
    rng: &mut StdRng,
) {
    let n = rows[0].len();
    let (qh, kvh) = heads;
    let shape = AttnShape {
        rows: rows.len(),
        n,
        q_heads: qh,
        kv_heads: kvh,
        head_dim: d,
    };
    let (qw, kw) = (qh * d, kvh * d);
    let scale = 1.0 / (d as f32).sqrt();
    let shared = Inputs::<T> {
        shape,
        vis_end: VisEnd::from_rows(
            &rows
                .iter()
                .map(|r| r.vis_end().to_vec())
                .collect::<Vec<_>>(),
        )
        .unwrap(),
        q: random_vec(rng, shape.q_len(), 2.5),
        k: random_vec(rng, shape.kv_len(), 1.7),
        v: random_vec(rng, shape.kv_len(), 1.0),
        scale,
    };

    // The unshared sequences, one per row of the paired batch.
    let seqs: Vec<(usize, PairedSeq)> = rows
        .iter()
        .enumerate()
        .flat_map(|(r, row)| row.paired().into_iter().map(move |s| (r, s)))
        .collect();
    let np = seqs.iter().map(|(_, s)| s.len()).max().unwrap();
    let pshape = AttnShape {
        rows: seqs.len(),
        n: np,
        ..shape
    };
    let gather = |src: &[T], w: usize, r: usize, s: &PairedSeq| {
        let mut out = s.gather(&src[r * n * w..(r + 1) * n * w], w);
        out.resize(np * w, T::from_f64(0.0));
        out
    };
    let cat = |src: &[T], w: usize| -> Vec<T> {
        seqs.iter()
            .flat_map(|(r, s)| gather(src, w, *r, s))
            .collect()
    };
    let paired = Inputs::<T> {
        shape: pshape,
        vis_end: VisEnd::from_rows(
            &seqs
                .iter()
                .map(|(_, s)| s.causal_vis_end(np))
                .collect::<Vec<_>>(),
        )
        .unwrap(),
        q: cat(&shared.q, qw),
        k: cat(&shared.k, kw),
        v: cat(&shared.v, kw),
        scale,
    };
    // dO per unshared token on the grid; the shared dO is the (exact) sum over copies.
    let mut copies = vec![0usize; shape.rows * n];
    let mut shared_do = vec![0.0f64; shape.q_len()];
    let mut paired_do = vec![T::from_f64(0.0); pshape.q_len()];
    for (p, (r, s)) in seqs.iter().enumerate() {
        for (t, &tok) in s.shared.iter().enumerate() {
            copies[r * n + tok] += 1;
            let dst = token_at(&shape, qh, *r, tok);
            for (c, acc) in shared_do[dst].iter_mut().enumerate() {
                let x = f64::from(rng.random_range(-16i32..=16)) / 32.0;
                paired_do[token_at(&pshape, qh, p, t).start + c] = T::from_f64(x);
                *acc += x;
            }
        }
    }
    let k_max = *copies.iter().max().unwrap();
    assert!(
        k_max <= 16,
        "{label}: {k_max} copies: the shared dO would not be exact"
    );
    let shared_do: Vec<T> = shared_do.iter().map(|&x| T::from_f64(x)).collect();

    let choice = BackwardChoice::default();
    let so = run(
        Layout::Dense,
        &shared,
        &shared_do,
        choice,
        Schedule::Ascending,
    )
    .unwrap();
    let po = run(
        Layout::Dense,
        &paired,
        &paired_do,
        choice,
        Schedule::Ascending,
    )
    .unwrap();
    let (srf, prf) = (bounds(&shared, &shared_do), bounds(&paired, &paired_do));

    for (which, (sg, pg)) in [(&so.dq, &po.dq), (&so.dk, &po.dk), (&so.dv, &po.dv)]
        .into_iter()
        .enumerate()
    {
        let heads = if which == 0 { qh } else { kvh };
        // The unshared gradients summed into shared positions.
        let mut summed = vec![0.0f64; sg.len()];
        for (p, (r, s)) in seqs.iter().enumerate() {
            for (t, &tok) in s.shared.iter().enumerate() {
                let src = token_at(&pshape, heads, p, t);
                for (acc, x) in summed[token_at(&shape, heads, *r, tok)]
                    .iter_mut()
                    .zip(&pg[src])
                {
                    *acc += x.to_f64();
                }
            }
        }
        let err = sg
            .iter()
            .zip(&summed)
            .map(|(a, b)| (a.to_f64() - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let g = Grad::ALL[which];
        let bound =
            srf.bound(g, LseError::EXACT) + (k_max as f64).sqrt() * prf.bound(g, LseError::EXACT);
        eprintln!(
            "{label}: {g} shared vs sum of copies {err:.3e} (bound {bound:.3e}, k_max {k_max})"
        );
        assert!(err <= bound, "{label}: {g}: {err:e} > {bound:e}");
        // Padding tokens (in no sequence) get exact zeros on the shared side.
        for (r, row) in rows.iter().enumerate() {
            for (tok, info) in row.tokens().iter().enumerate() {
                if info.item.is_none() {
                    assert!(
                        sg[token_at(&shape, heads, r, tok)]
                            .iter()
                            .all(|x| x.to_f64() == 0.0),
                        "{label}: padding row {r} token {tok} has a {g} gradient"
                    );
                }
            }
        }
    }
}

#[test]
fn prefix_k_rows_equal_their_unshared_sequences() {
    let mut rng = StdRng::seed_from_u64(0xe9_11);
    for it in 0..3 {
        let mut b = RowBuilder::new();
        for _ in 0..rng.random_range(1..=2) {
            let (p, c) = common::random_prefix_k(&mut rng, 6, 40);
            b.prefix_completions(p, &c).unwrap();
        }
        let n = b.len() + rng.random_range(0..20);
        let row = b.finish(n).unwrap();
        if it % 2 == 0 {
            check_rows::<bf16>(
                &format!("prefix+k {it}, bf16 d64 gqa 2"),
                &[row],
                (4, 2),
                64,
                &mut rng,
            );
        } else {
            check_rows::<f16>(
                &format!("prefix+k {it}, f16 d128 gqa 4"),
                &[row],
                (4, 1),
                128,
                &mut rng,
            );
        }
    }
}

#[test]
fn trees_equal_their_root_to_leaf_paths() {
    let mut rng = StdRng::seed_from_u64(0xe9_12);
    for it in 0..2 {
        // A random tree with at least two leaves (so some tokens have copies).
        let tree = loop {
            let t = common::random_tree(&mut rng, 7, 30);
            if t.leaves().len() >= 2 {
                break t;
            }
        };
        let mut b = RowBuilder::new();
        b.tree(tree).unwrap();
        let n = b.len() + rng.random_range(0..10);
        let row = b.finish(n).unwrap();
        if it == 0 {
            check_rows::<f16>(
                &format!("tree {it}, f16 d64 gqa 1"),
                &[row],
                (2, 2),
                64,
                &mut rng,
            );
        } else {
            check_rows::<bf16>(
                &format!("tree {it}, bf16 d128 gqa 8"),
                &[row],
                (8, 1),
                128,
                &mut rng,
            );
        }
    }
}
