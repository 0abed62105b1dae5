//! The reference forward against a naive dense-mask attention written independently in the test
//! support, for every mask family, plus the fully-masked-query convention and input dtypes.
//!
//! Tolerance: both sides compute in f64 and differ only in summation order and in normalising
//! before (reference) or after (naive) the weighted sum of V, so they agree to a few ulps of the
//! values involved; `1e-12` (relative L2 and max abs, inputs in [-1, 1)) leaves room for that and
//! nothing else.

use crate::reference_support;

use half::{bf16, f16};
use prefix_attn::mask::VisEnd;
use prefix_attn::reference::{self, max_abs_error, rel_l2_error, Element};
use prefix_attn::{AttnShape, Scale};
use reference_support::*;

const TOL: f64 = 1e-12;

fn shape(rows: usize, n: usize, q_heads: usize, kv_heads: usize, d: usize) -> AttnShape {
    AttnShape {
        rows,
        n,
        q_heads,
        kv_heads,
        head_dim: d,
    }
}

/// Runs reference and naive on seeded inputs scaled by `magnitude` and checks every element.
fn check_against_naive(
    label: &str,
    shape: AttnShape,
    rows: &[Vec<i32>],
    seed: u64,
    magnitude: f64,
) {
    let vis = VisEnd::from_rows(rows).unwrap();
    let mut rng = rng(seed);
    let mut draw = |len| -> Vec<f64> {
        random_values(&mut rng, len)
            .into_iter()
            .map(|x| x * magnitude)
            .collect()
    };
    let (q, k, v) = (
        draw(shape.q_len()),
        draw(shape.kv_len()),
        draw(shape.kv_len()),
    );
    // The scale as the kernels take it (an f32; prefix_attn::Scale), which the reference widens
    // exactly: the naive side must be given that same number.
    let scale = Scale::default_for(shape.head_dim);

    let got = reference::forward(&shape, &vis, &q, &k, &v, scale).unwrap();
    let (o, lse) = naive_forward(
        shape.rows,
        shape.n,
        shape.q_heads,
        shape.kv_heads,
        shape.head_dim,
        vis.as_slice(),
        &q,
        &k,
        &v,
        scale.as_f64(),
    );
    assert_eq!(got.o.len(), shape.q_len(), "{label}");
    assert_eq!(got.lse.len(), shape.lse_len(), "{label}");
    assert!(got.o.iter().all(|x| x.is_finite()), "{label}: non-finite O");
    assert!(
        got.lse
            .iter()
            .all(|x| x.is_finite() || *x == f64::NEG_INFINITY),
        "{label}: LSE NaN or +inf"
    );
    for (what, g, w) in [("O", &got.o, &o), ("LSE", &got.lse, &lse)] {
        let (rel, abs) = (rel_l2_error(g, w), max_abs_error(g, w));
        assert!(
            rel <= TOL && abs <= TOL * magnitude.max(1.0),
            "{label} {what}: rel {rel:e}, abs {abs:e}"
        );
    }
    // The -inf pattern of LSE is exactly the naive one (max_abs_error already treats a one-sided
    // -inf as an infinite error; this names the query).
    for (idx, (g, w)) in got.lse.iter().zip(&lse).enumerate() {
        assert_eq!(
            *g == f64::NEG_INFINITY,
            *w == f64::NEG_INFINITY,
            "{label}: LSE index {idx}"
        );
    }
}

fn family_rows(n: usize) -> Vec<(&'static str, Vec<i32>)> {
    vec![
        ("causal", causal(n)),
        ("documents", documents(&[5, 1, 7, 3], n)),
        (
            "prefix + 3 completions",
            prefix_completions(4, &[3, 5, 2], n),
        ),
        ("DPO pair", prefix_completions(6, &[4, 5], n)),
        ("padding after causal", pad_to(vec![9; 9], n)),
        ("tree", tree(n)),
        ("all padding", pad_to(Vec::new(), n)),
    ]
}

#[test]
fn matches_naive_for_each_mask_family() {
    let n = 17;
    for (f, (name, row)) in family_rows(n).into_iter().enumerate() {
        for (q_heads, kv_heads) in [(1, 1), (2, 2), (4, 2), (3, 1)] {
            let label = format!("{name}, {q_heads}/{kv_heads} heads");
            let rows = vec![row.clone(), row.clone()];
            check_against_naive(
                &label,
                shape(2, n, q_heads, kv_heads, 8),
                &rows,
                100 + f as u64,
                1.0,
            );
        }
    }
}

#[test]
fn matches_naive_with_every_family_in_one_batch() {
    let n = 20;
    let mut rows: Vec<Vec<i32>> = family_rows(n).into_iter().map(|(_, r)| r).collect();
    let mut r = rng(7);
    rows.push(random_vis_end(&mut r, n));
    rows.push(random_vis_end(&mut r, n));
    check_against_naive("mixed batch", shape(rows.len(), n, 4, 2, 16), &rows, 8, 1.0);
}

#[test]
fn matches_naive_on_random_masks() {
    let mut r = rng(11);
    for case in 0..6 {
        let n = 1 + case * 5;
        let rows = vec![random_vis_end(&mut r, n), random_vis_end(&mut r, n)];
        check_against_naive(
            &format!("random n={n}"),
            shape(2, n, 2, 1, 4),
            &rows,
            12 + case as u64,
            1.0,
        );
    }
}

#[test]
fn large_scores_stay_finite() {
    // Scores up to ~30^2 * 8 / sqrt(8) ~ 2500: exp without the max subtracted would overflow.
    let n = 12;
    let rows = vec![causal(n), prefix_completions(3, &[4, 3], n)];
    check_against_naive("large scores", shape(2, n, 2, 2, 8), &rows, 21, 30.0);
}

#[test]
fn matches_naive_at_test_scale() {
    // The largest shape kernels are tested at: one row of 512, head dim 128, GQA.
    let n = 512;
    let rows = vec![prefix_completions(200, &[100, 150, 50], n)];
    check_against_naive("n=512 d=128", shape(1, n, 2, 1, 128), &rows, 31, 1.0);
}

#[test]
fn query_that_sees_no_key_has_zero_output_and_minus_infinity_lse() {
    // Row 0: padding at 0, 5 and 6 (5 and 6 after the document [1, 5) ended); row 1: all padding.
    let n = 7;
    let row0 = vec![0, 5, 5, 5, 5, 5, 6];
    let vis = VisEnd::from_rows(&[row0, pad_to(Vec::new(), n)]).unwrap();
    let shape = shape(2, n, 2, 1, 4);
    let mut r = rng(41);
    let q = random_values(&mut r, shape.q_len());
    let k = random_values(&mut r, shape.kv_len());
    let v = random_values(&mut r, shape.kv_len());
    let out = reference::forward(&shape, &vis, &q, &k, &v, 0.5).unwrap();
    let d = shape.head_dim;
    for row in 0..2 {
        for i in 0..n {
            let masked = row == 1 || [0, 5, 6].contains(&i);
            for h in 0..shape.q_heads {
                let lse = out.lse[(row * shape.q_heads + h) * n + i];
                let at = ((row * n + i) * shape.q_heads + h) * d;
                let o = &out.o[at..at + d];
                if masked {
                    assert_eq!(lse, f64::NEG_INFINITY, "row {row} query {i} head {h}");
                    assert!(
                        o.iter().all(|&x| x == 0.0 && x.is_sign_positive()),
                        "row {row} query {i}"
                    );
                } else {
                    assert!(lse.is_finite(), "row {row} query {i} head {h}");
                    assert!(o.iter().all(|x| x.is_finite()) && o.iter().any(|&x| x != 0.0));
                }
            }
        }
    }
}

/// Inputs of type `T` give exactly the f64 result of their widened values.
fn check_dtype<T: Element>() {
    let n = 9;
    let shape = shape(2, n, 2, 1, 8);
    let vis = VisEnd::from_rows(&[prefix_completions(3, &[2, 3], n), causal(n)]).unwrap();
    let mut r = rng(51);
    let mut draw = |len| -> Vec<T> {
        random_values(&mut r, len)
            .into_iter()
            .map(T::from_f64)
            .collect()
    };
    let (q, k, v, d_o) = (
        draw(shape.q_len()),
        draw(shape.kv_len()),
        draw(shape.kv_len()),
        draw(shape.q_len()),
    );
    let widen = |x: &[T]| -> Vec<f64> { x.iter().map(|e| e.to_f64()).collect() };
    let (q64, k64, v64, do64) = (widen(&q), widen(&k), widen(&v), widen(&d_o));

    let got = reference::forward(&shape, &vis, &q, &k, &v, 0.3).unwrap();
    let want = reference::forward(&shape, &vis, &q64, &k64, &v64, 0.3).unwrap();
    assert_eq!(got, want, "{} forward", T::NAME);
    let got = reference::backward(&shape, &vis, &q, &k, &v, &d_o, 0.3).unwrap();
    let want = reference::backward(&shape, &vis, &q64, &k64, &v64, &do64, 0.3).unwrap();
    assert_eq!(got, want, "{} backward", T::NAME);
}

#[test]
fn every_input_dtype_is_widened_exactly() {
    check_dtype::<bf16>();
    check_dtype::<f16>();
    check_dtype::<f32>();
    check_dtype::<f64>();
    // The widening itself is the exact one of `half` and `f64::from`.
    let x = bf16::from_f32(-0.3);
    assert_eq!(Element::to_f64(x), x.to_f64());
    let y = f16::from_f32(0.7);
    assert_eq!(Element::to_f64(y), y.to_f64());
    assert_eq!(Element::to_f64(0.1f32), f64::from(0.1f32));
}

#[test]
fn forward_is_deterministic() {
    let n = 33;
    let shape = shape(3, n, 4, 2, 16);
    let vis = VisEnd::from_rows(&[causal(n), tree(n), documents(&[10, 10, 13], n)]).unwrap();
    let mut r = rng(61);
    let q = random_values(&mut r, shape.q_len());
    let k = random_values(&mut r, shape.kv_len());
    let v = random_values(&mut r, shape.kv_len());
    let a = reference::forward(&shape, &vis, &q, &k, &v, 0.25).unwrap();
    let b = reference::forward(&shape, &vis, &q, &k, &v, 0.25).unwrap();
    assert_eq!(a, b);
}
