//! The SwiGLU MLP in f32 on the CPU: `y = (silu(x W_gate) * (x W_up)) W_down`, three threaded
//! GEMMs and an element-wise step. Its cost is proportional to the tokens it runs on, which is
//! what prefix sharing cuts: each prompt token goes through it once instead of k times.

use super::gemm::{matmul, MatShape};
use super::pool::available_threads;
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Weights of one SwiGLU MLP, row-major: `w_gate`, `w_up` `[hidden, ffn]`, `w_down [ffn, hidden]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SwigluMlp {
    hidden: usize,
    ffn: usize,
    w_gate: Vec<f32>,
    w_up: Vec<f32>,
    w_down: Vec<f32>,
    threads: usize,
}

impl SwigluMlp {
    /// Errors: a zero size or a weight of the wrong length (`LengthMismatch` naming it).
    pub fn new(
        hidden: usize,
        ffn: usize,
        w_gate: Vec<f32>,
        w_up: Vec<f32>,
        w_down: Vec<f32>,
    ) -> Result<Self> {
        if hidden == 0 || ffn == 0 {
            return Err(Error::InvalidArgument {
                what: "hidden / ffn",
                detail: format!("{hidden} / {ffn}: both must be positive"),
            });
        }
        for (what, len) in [
            ("w_gate [hidden, ffn]", w_gate.len()),
            ("w_up [hidden, ffn]", w_up.len()),
            ("w_down [ffn, hidden]", w_down.len()),
        ] {
            if len != hidden * ffn {
                return Err(Error::LengthMismatch {
                    what,
                    expected: hidden * ffn,
                    got: len,
                });
            }
        }
        Ok(Self {
            hidden,
            ffn,
            w_gate,
            w_up,
            w_down,
            threads: available_threads(),
        })
    }

    /// Seeded random weights, uniform in `±1/sqrt(fan_in)` (so activations keep their scale).
    pub fn random(hidden: usize, ffn: usize, seed: u64) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut w = |len: usize, fan_in: usize| -> Vec<f32> {
            let a = 1.0 / (fan_in as f32).sqrt();
            (0..len).map(|_| rng.random_range(-a..a)).collect()
        };
        let (g, u, d) = (
            w(hidden * ffn, hidden),
            w(hidden * ffn, hidden),
            w(ffn * hidden, ffn),
        );
        Self::new(hidden, ffn, g, u, d)
    }

    /// Runs on at most `threads` threads (at least one).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    pub fn ffn(&self) -> usize {
        self.ffn
    }

    pub fn w_gate(&self) -> &[f32] {
        &self.w_gate
    }

    pub fn w_up(&self) -> &[f32] {
        &self.w_up
    }

    pub fn w_down(&self) -> &[f32] {
        &self.w_down
    }

    /// FLOPs of the three GEMMs for `tokens` tokens (the element-wise step is not counted).
    pub fn flops(&self, tokens: usize) -> f64 {
        3.0 * 2.0 * tokens as f64 * self.hidden as f64 * self.ffn as f64
    }

    /// `y [tokens, hidden]` for `x [tokens, hidden]`. Errors: `x` not a whole number of rows.
    pub fn forward(&self, x: &[f32]) -> Result<Vec<f32>> {
        if x.len() % self.hidden != 0 {
            return Err(Error::LengthMismatch {
                what: "x [tokens, hidden] (a multiple of hidden)",
                expected: (x.len() / self.hidden + 1) * self.hidden,
                got: x.len(),
            });
        }
        let (h, f) = (self.hidden, self.ffn);
        let m = x.len() / h;
        let up_shape = MatShape { m, k: h, n: f };
        let gate = matmul(x, &self.w_gate, up_shape, self.threads)?;
        let mut act = matmul(x, &self.w_up, up_shape, self.threads)?;
        for (a, &g) in act.iter_mut().zip(&gate) {
            *a *= silu(g);
        }
        matmul(&act, &self.w_down, MatShape { m, k: f, n: h }, self.threads)
    }
}

/// `g / (1 + exp(-g))`: 0 for g = -inf, g for large g (exp(-g) underflows to 0).
#[inline]
pub fn silu(g: f32) -> f32 {
    g / (1.0 + (-g).exp())
}
