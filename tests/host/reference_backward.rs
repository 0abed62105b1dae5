//! The reference backward against central finite differences of the scalar loss
//! `L = sum(dO * O)`, whose gradient with respect to Q, K and V is exactly what `backward`
//! returns for that `dO`.
//!
//! Tolerance: with step `h = 1e-5` the central difference has truncation error `~h^2 |L'''| / 6`
//! (~1e-11 here) and rounding error `~eps |L| / h` (~1e-10 for |L| of a few units), so every
//! element must agree within `1e-8` absolute, and the whole gradient within `1e-8` relative L2
//! (measured: at most ~3e-10 on these cases).
//! A wrong term in any formula (a missing `D_i`, a missing `scale`, a GQA head not added) is off
//! by orders of magnitude more.

use crate::reference_support;

use prefix_attn::mask::VisEnd;
use prefix_attn::reference::{self, max_abs_error, rel_l2_error};
use prefix_attn::AttnShape;
use reference_support::*;

const STEP: f64 = 1e-5;
const TOL: f64 = 1e-8;

struct Case {
    shape: AttnShape,
    vis: VisEnd,
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
    d_o: Vec<f64>,
    scale: f64,
}

impl Case {
    fn new(rows: &[Vec<i32>], q_heads: usize, kv_heads: usize, d: usize, seed: u64) -> Self {
        let vis = VisEnd::from_rows(rows).unwrap();
        let shape = AttnShape {
            rows: vis.rows(),
            n: vis.n(),
            q_heads,
            kv_heads,
            head_dim: d,
        };
        let mut r = rng(seed);
        Self {
            q: random_values(&mut r, shape.q_len()),
            k: random_values(&mut r, shape.kv_len()),
            v: random_values(&mut r, shape.kv_len()),
            d_o: random_values(&mut r, shape.q_len()),
            scale: 0.7,
            shape,
            vis,
        }
    }

    fn loss(&self, q: &[f64], k: &[f64], v: &[f64]) -> f64 {
        let out = reference::forward(&self.shape, &self.vis, q, k, v, self.scale).unwrap();
        out.o.iter().zip(&self.d_o).map(|(o, g)| o * g).sum()
    }

    /// Central differences of the loss with respect to every element of Q, K and V.
    fn finite_differences(&self) -> [Vec<f64>; 3] {
        let mut grads = [Vec::new(), Vec::new(), Vec::new()];
        for (which, grad) in grads.iter_mut().enumerate() {
            let len = if which == 0 {
                self.q.len()
            } else {
                self.k.len()
            };
            for idx in 0..len {
                let at = |delta: f64| {
                    let (mut q, mut k, mut v) = (self.q.clone(), self.k.clone(), self.v.clone());
                    [&mut q, &mut k, &mut v][which][idx] += delta;
                    self.loss(&q, &k, &v)
                };
                grad.push((at(STEP) - at(-STEP)) / (2.0 * STEP));
            }
        }
        grads
    }

    fn check(&self, label: &str) -> reference::BackwardOut {
        let got = reference::backward(
            &self.shape,
            &self.vis,
            &self.q,
            &self.k,
            &self.v,
            &self.d_o,
            self.scale,
        )
        .unwrap();
        let want = self.finite_differences();
        for (name, g, w) in [
            ("dQ", &got.dq, &want[0]),
            ("dK", &got.dk, &want[1]),
            ("dV", &got.dv, &want[2]),
        ] {
            assert_eq!(g.len(), w.len(), "{label} {name}");
            assert!(
                g.iter().all(|x| x.is_finite()),
                "{label} {name}: not finite"
            );
            let (rel, abs) = (rel_l2_error(g, w), max_abs_error(g, w));
            assert!(
                rel <= TOL && abs <= TOL,
                "{label} {name}: rel {rel:e}, abs {abs:e}"
            );
        }
        got
    }
}

#[test]
fn gradients_match_finite_differences_for_each_mask_family() {
    let n = 9;
    let families = [
        ("causal", causal(n)),
        ("documents", documents(&[3, 4, 2], n)),
        (
            "prefix + 2 completions, padding",
            prefix_completions(3, &[2, 2], n),
        ),
        ("tree (n = 13)", tree(13)),
    ];
    for (f, (name, row)) in families.into_iter().enumerate() {
        let n = row.len();
        let mut r = rng(200 + f as u64);
        let rows = vec![row, random_vis_end(&mut r, n)];
        // GQA, group 2: both query heads add into the one kv head.
        Case::new(&rows, 2, 1, 3, 300 + f as u64).check(&format!("{name}, GQA 2/1"));
    }
}

#[test]
fn gradients_match_finite_differences_with_two_kv_groups() {
    let n = 8;
    let rows = vec![prefix_completions(2, &[3, 2], n), causal(n)];
    Case::new(&rows, 4, 2, 2, 400).check("prefix + completions, GQA 4/2");
}

#[test]
fn queries_and_keys_without_pairs_get_zero_gradient() {
    // Row 0: padding at 0 and 7 and a document [1, 7); row 1: all padding.
    let n = 8;
    let row0 = vec![0, 7, 7, 7, 7, 7, 7, 7];
    let case = Case::new(&[row0, pad_to(Vec::new(), n)], 2, 1, 3, 500);
    let got = case.check("padding query, all-padding row");
    let d = case.shape.head_dim;
    let (qh, kvh) = (case.shape.q_heads, case.shape.kv_heads);
    for row in 0..2 {
        for i in 0..n {
            if row == 0 && (1..7).contains(&i) {
                continue;
            }
            for h in 0..qh {
                let at = ((row * n + i) * qh + h) * d;
                assert!(
                    got.dq[at..at + d].iter().all(|&x| x == 0.0),
                    "dQ row {row} token {i}"
                );
            }
            for g in 0..kvh {
                let at = ((row * n + i) * kvh + g) * d;
                assert!(
                    got.dk[at..at + d].iter().all(|&x| x == 0.0),
                    "dK row {row} token {i}"
                );
                assert!(
                    got.dv[at..at + d].iter().all(|&x| x == 0.0),
                    "dV row {row} token {i}"
                );
            }
        }
    }
    // The document's tokens do get gradients (row 0, token 3, head 0).
    let at = 3 * qh * d;
    assert!(got.dq[at..at + d].iter().any(|&x| x != 0.0));
}

#[test]
fn backward_is_deterministic_and_finite_at_test_scale() {
    let n = 256;
    let rows = vec![prefix_completions(64, &[48, 64, 32], n), causal(n)];
    let case = Case::new(&rows, 4, 2, 64, 600);
    let run = || {
        reference::backward(
            &case.shape,
            &case.vis,
            &case.q,
            &case.k,
            &case.v,
            &case.d_o,
            0.125,
        )
        .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    for x in [&a.dq, &a.dk, &a.dv] {
        assert!(x.iter().all(|v| v.is_finite()));
    }
}
