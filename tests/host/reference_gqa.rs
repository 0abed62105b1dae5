//! GQA: the query heads of one group reading one kv head give the same results as multi-head
//! attention with that kv head duplicated for each of them, and its dK/dV are the sums of the
//! duplicates' dK/dV.
//!
//! Forward and dQ run the same arithmetic on the same values in both layouts, so they must be
//! bit-identical. dK/dV: the GQA side adds its two query heads into a zeroed kv head in head
//! order, the test adds the MHA duplicates in the same order, so they are also bit-identical.

use crate::reference_support;

use prefix_attn::mask::VisEnd;
use prefix_attn::reference;
use prefix_attn::AttnShape;
use reference_support::*;

/// `[rows, n, kv_heads, d]` to `[rows, n, kv_heads * group, d]`, each kv head repeated `group`
/// times in place (MHA head `h` holds kv head `h / group`).
fn duplicate_heads(x: &[f64], kv_heads: usize, group: usize, d: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len() * group);
    for token in x.chunks(kv_heads * d) {
        for head in token.chunks(d) {
            for _ in 0..group {
                out.extend_from_slice(head);
            }
        }
    }
    out
}

/// Sums each run of `group` consecutive heads: the inverse direction of `duplicate_heads`.
fn sum_groups(x: &[f64], q_heads: usize, group: usize, d: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for token in x.chunks(q_heads * d) {
        for heads in token.chunks(group * d) {
            let mut acc = vec![0.0; d];
            for head in heads.chunks(d) {
                for (a, h) in acc.iter_mut().zip(head) {
                    *a += h;
                }
            }
            out.extend(acc);
        }
    }
    out
}

#[test]
fn gqa_equals_mha_with_duplicated_kv_heads() {
    let n = 14;
    let (q_heads, kv_heads, d) = (6, 2, 8);
    let group = q_heads / kv_heads;
    let vis = VisEnd::from_rows(&[prefix_completions(4, &[3, 4], n), tree(n)]).unwrap();
    let gqa = AttnShape {
        rows: 2,
        n,
        q_heads,
        kv_heads,
        head_dim: d,
    };
    let mha = AttnShape {
        kv_heads: q_heads,
        ..gqa
    };
    let mut r = rng(700);
    let q = random_values(&mut r, gqa.q_len());
    let k = random_values(&mut r, gqa.kv_len());
    let v = random_values(&mut r, gqa.kv_len());
    let d_o = random_values(&mut r, gqa.q_len());
    let k2 = duplicate_heads(&k, kv_heads, group, d);
    let v2 = duplicate_heads(&v, kv_heads, group, d);
    assert_eq!(k2.len(), mha.kv_len());

    let got = reference::forward(&gqa, &vis, &q, &k, &v, 0.4).unwrap();
    let want = reference::forward(&mha, &vis, &q, &k2, &v2, 0.4).unwrap();
    assert_eq!(got, want);

    let got = reference::backward(&gqa, &vis, &q, &k, &v, &d_o, 0.4).unwrap();
    let want = reference::backward(&mha, &vis, &q, &k2, &v2, &d_o, 0.4).unwrap();
    assert_eq!(got.dq, want.dq);
    assert_eq!(got.dk, sum_groups(&want.dk, q_heads, group, d));
    assert_eq!(got.dv, sum_groups(&want.dv, q_heads, group, d));
    // Not vacuous: every query head of a group really gets a different gradient share.
    assert_ne!(want.dk[..d], want.dk[d..2 * d]);
}
