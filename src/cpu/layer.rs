//! The attention layer in f32 on the CPU: QKV projection (one fused GEMM), rotary embedding of
//! the Q and K heads with the layout's position ids, block-skipping attention, output
//! projection. Projections cost per token, attention per visible pair: a layer's shared-over-
//! paired speedup lies between the two ratios.

use super::attention::CpuAttention;
use super::gemm::{matmul, MatShape};
use super::pool::available_threads;
use super::rotary::apply_rotary;
use crate::error::{Error, Result};
use crate::rotary::{RotaryDirection, RotaryTable};
use crate::shape::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Sizes of an attention layer: `hidden` in and out, GQA heads of `head_dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerDims {
    pub hidden: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl LayerDims {
    /// Columns of the fused QKV projection: Q heads, then K heads, then V heads.
    pub fn qkv_width(&self) -> usize {
        (self.q_heads + 2 * self.kv_heads) * self.head_dim
    }

    /// FLOPs of the two projections for `tokens` tokens.
    pub fn projection_flops(&self, tokens: usize) -> f64 {
        let t = tokens as f64;
        2.0 * t * self.hidden as f64 * self.qkv_width() as f64
            + 2.0 * t * (self.q_heads * self.head_dim) as f64 * self.hidden as f64
    }
}

/// Weights of one attention layer: `w_qkv [hidden, qkv_width]`, `w_o [q_heads * head_dim, hidden]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionLayer {
    dims: LayerDims,
    w_qkv: Vec<f32>,
    w_o: Vec<f32>,
    threads: usize,
}

impl AttentionLayer {
    /// Seeded random weights, uniform in `±1/sqrt(fan_in)`. Errors: zero sizes or heads that do
    /// not divide.
    pub fn random(dims: LayerDims, seed: u64) -> Result<Self> {
        if dims.hidden == 0 || dims.head_dim == 0 {
            return Err(Error::InvalidArgument {
                what: "hidden / head_dim",
                detail: format!("{} / {}: both must be positive", dims.hidden, dims.head_dim),
            });
        }
        if dims.kv_heads == 0 || dims.q_heads == 0 || dims.q_heads % dims.kv_heads != 0 {
            return Err(Error::HeadCountMismatch {
                q_heads: dims.q_heads,
                kv_heads: dims.kv_heads,
            });
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut w = |len: usize, fan_in: usize| -> Vec<f32> {
            let a = 1.0 / (fan_in as f32).sqrt();
            (0..len).map(|_| rng.random_range(-a..a)).collect()
        };
        let w_qkv = w(dims.hidden * dims.qkv_width(), dims.hidden);
        let w_o = w(
            dims.q_heads * dims.head_dim * dims.hidden,
            dims.q_heads * dims.head_dim,
        );
        Ok(Self {
            dims,
            w_qkv,
            w_o,
            threads: available_threads(),
        })
    }

    /// Runs on at most `threads` threads (at least one).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    pub fn dims(&self) -> LayerDims {
        self.dims
    }

    /// `[hidden, qkv_width]`: Q heads, K heads, V heads.
    pub fn w_qkv(&self) -> &[f32] {
        &self.w_qkv
    }

    /// `[q_heads * head_dim, hidden]`.
    pub fn w_o(&self) -> &[f32] {
        &self.w_o
    }

    /// `y [rows * n, hidden]` for `x [rows * n, hidden]` with the batch's mask (`attention`,
    /// whose rows and `n` say how tokens form rows) and one position id per token.
    ///
    /// Errors: `x` or `positions` of the wrong length, a position outside `table`, a table of
    /// another head dim, and the attention's own errors.
    pub fn forward(
        &self,
        attention: &CpuAttention,
        x: &[f32],
        positions: &[i32],
        table: &RotaryTable,
    ) -> Result<Vec<f32>> {
        let LayerDims {
            hidden,
            q_heads,
            kv_heads,
            head_dim,
        } = self.dims;
        let (rows, n) = (attention.vis_end().rows(), attention.vis_end().n());
        let tokens = rows * n;
        if positions.len() != tokens {
            return Err(Error::LengthMismatch {
                what: "positions (one per token of the batch)",
                expected: tokens,
                got: positions.len(),
            });
        }
        if table.head_dim() != head_dim {
            return Err(Error::InvalidArgument {
                what: "rotary table",
                detail: format!(
                    "head dim {} for a layer of head dim {head_dim}",
                    table.head_dim()
                ),
            });
        }
        let width = self.dims.qkv_width();
        let mut qkv = matmul(
            x,
            &self.w_qkv,
            MatShape {
                m: tokens,
                k: hidden,
                n: width,
            },
            self.threads,
        )?;
        // Q and K heads are adjacent in each token's QKV row: one pass rotates both.
        apply_rotary(
            &mut qkv,
            width,
            q_heads + kv_heads,
            positions,
            table,
            RotaryDirection::Forward,
        )?;
        let split = |from: usize, heads: usize| -> Vec<f32> {
            let cols = from * head_dim..(from + heads) * head_dim;
            qkv.chunks_exact(width)
                .flat_map(|t| t[cols.clone()].iter().copied())
                .collect()
        };
        let (q, k, v) = (
            split(0, q_heads),
            split(q_heads, kv_heads),
            split(q_heads + kv_heads, kv_heads),
        );
        let shape = AttnShape {
            rows,
            n,
            q_heads,
            kv_heads,
            head_dim,
        };
        let scale = 1.0 / (head_dim as f32).sqrt();
        let out = attention.forward(&shape, &q, &k, &v, scale)?;
        matmul(
            &out.o,
            &self.w_o,
            MatShape {
                m: tokens,
                k: q_heads * head_dim,
                n: hidden,
            },
            self.threads,
        )
    }
}
