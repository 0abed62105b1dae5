//! Tiled, block-skipping attention backward in f32 on the CPU, given the forward's O and LSE.
//!
//! With `P = exp(scale * q_i . k_j - lse_i)` over visible pairs and `D_i = dO_i . O_i`:
//! `dV_j = sum_i P_ij dO_i`, `dS_ij = P_ij (dO_i . v_j - D_i)`, `dQ_i = scale sum_j dS_ij k_j`,
//! `dK_j = scale sum_i dS_ij q_i`. Two passes, neither needing atomics or locks:
//! - dQ: q-major units (row, q tile, q head) walk the q tile's non-empty k tiles;
//! - dK/dV: k-major units (row, k tile, kv head) walk the k tile's non-empty q tiles and, in each,
//!   every query head of the kv head's group (GQA).
//!
//! Each pass recomputes the scores it needs (seven tile products in all against the forward's
//! two, where a GPU kernel sharing scores between passes would do five), which changes the cost
//! of the shared and the paired formats alike. FULL tiles skip the per-element rule, EMPTY tiles
//! are never visited, and a query that sees no key (LSE `-inf`) contributes nothing.

use super::attention::{check_len, head_row, AttnOutput, CpuAttention, Qkv, Tile};
use super::gemm::{axpy, dot};
use super::pool::par_units;
use crate::error::Result;
use crate::mask::{visible, TileClass};
use crate::shape::AttnShape;

/// Gradients from [`CpuAttention::backward`], in the layouts of Q, K and V.
#[derive(Debug, Clone, PartialEq)]
pub struct AttnGrads {
    pub dq: Vec<f32>,
    pub dk: Vec<f32>,
    pub dv: Vec<f32>,
}

impl CpuAttention {
    /// dQ, dK, dV of the loss through O given `d_o` (like Q) and the forward's `out` for the
    /// same inputs. Errors as [`CpuAttention::forward`], plus lengths of `d_o`, `out.o` and
    /// `out.lse`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        shape: &AttnShape,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &AttnOutput,
        d_o: &[f32],
        scale: f32,
    ) -> Result<AttnGrads> {
        self.check(shape, scale)?;
        check_len("q", q, shape.q_len())?;
        check_len("k", k, shape.kv_len())?;
        check_len("v", v, shape.kv_len())?;
        check_len("d_o", d_o, shape.q_len())?;
        check_len("o", &out.o, shape.q_len())?;
        check_len("lse", &out.lse, shape.lse_len())?;
        let x = Qkv { q, k, v };
        let pass = Pass {
            a: self,
            shape,
            x,
            lse: &out.lse,
            d_o,
            delta: &delta(shape, &out.o, d_o),
            scale,
        };
        let (n, d) = (shape.n, shape.head_dim);

        let units = self.mask().rows() * self.mask().q_tiles() * shape.q_heads;
        let dq_tiles = par_units(units, self.threads(), |u| {
            let (r, qt, h) = self.q_unit(u, shape);
            pass.dq_tile(r, qt, h)
        });
        let mut grads = AttnGrads {
            dq: vec![0.0; shape.q_len()],
            dk: vec![0.0; shape.kv_len()],
            dv: vec![0.0; shape.kv_len()],
        };
        let bq = self.mask().tile().block_q();
        for (u, tile) in dq_tiles.into_iter().enumerate() {
            let (r, qt, h) = self.q_unit(u, shape);
            scatter(&mut grads.dq, &tile, shape.q_heads, n, d, r, qt * bq, h);
        }

        let k_tiles = self.mask().k_tiles();
        let units = self.mask().rows() * k_tiles * shape.kv_heads;
        let kv_tiles = par_units(units, self.threads(), |u| {
            let (r, kt, g) = kv_unit(u, k_tiles, shape.kv_heads);
            pass.dkv_tile(r, kt, g)
        });
        let bk = self.mask().tile().block_k();
        for (u, (dk, dv)) in kv_tiles.into_iter().enumerate() {
            let (r, kt, g) = kv_unit(u, k_tiles, shape.kv_heads);
            scatter(&mut grads.dk, &dk, shape.kv_heads, n, d, r, kt * bk, g);
            scatter(&mut grads.dv, &dv, shape.kv_heads, n, d, r, kt * bk, g);
        }
        Ok(grads)
    }
}

/// Unit `u` of the k-major pass: (row, k tile, kv head).
fn kv_unit(u: usize, k_tiles: usize, kv_heads: usize) -> (usize, usize, usize) {
    let g = u % kv_heads;
    let slot = u / kv_heads;
    (slot / k_tiles, slot % k_tiles, g)
}

/// `D = rowsum(dO * O)` per (row, q head, token), laid out like LSE.
fn delta(shape: &AttnShape, o: &[f32], d_o: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; shape.lse_len()];
    for r in 0..shape.rows {
        for h in 0..shape.q_heads {
            for i in 0..shape.n {
                out[(r * shape.q_heads + h) * shape.n + i] = dot(
                    head_row(o, shape, shape.q_heads, r, i, h),
                    head_row(d_o, shape, shape.q_heads, r, i, h),
                );
            }
        }
    }
    out
}

/// Copies a tile `[len, d]` of head `h` starting at token `t0` of row `r` into a dense
/// `[rows, n, heads, d]` tensor.
#[allow(clippy::too_many_arguments)]
fn scatter(
    dst: &mut [f32],
    tile: &[f32],
    heads: usize,
    n: usize,
    d: usize,
    r: usize,
    t0: usize,
    h: usize,
) {
    for (ii, src) in tile.chunks_exact(d).enumerate() {
        let at = ((r * n + t0 + ii) * heads + h) * d;
        dst[at..at + d].copy_from_slice(src);
    }
}

/// Everything both passes read.
struct Pass<'a> {
    a: &'a CpuAttention,
    shape: &'a AttnShape,
    x: Qkv<'a>,
    lse: &'a [f32],
    d_o: &'a [f32],
    delta: &'a [f32],
    scale: f32,
}

impl Pass<'_> {
    fn stat(&self, stat: &[f32], r: usize, h: usize, i: usize) -> f32 {
        stat[(r * self.shape.q_heads + h) * self.shape.n + i]
    }

    /// `(P_ij, dS_ij)` of one visible pair; `None` when the pair is masked or the query sees no
    /// key.
    #[allow(clippy::too_many_arguments)]
    fn pair(
        &self,
        class: TileClass,
        r: usize,
        h: usize,
        g: usize,
        i: usize,
        j: usize,
    ) -> Option<(f32, f32)> {
        let lse = self.stat(self.lse, r, h, i);
        if lse == f32::NEG_INFINITY
            || (class == TileClass::Partial && !visible(self.a.vis_end().row(r), i, j))
        {
            return None;
        }
        let s = self.shape;
        let q_i = self.x.q_row(s, r, i, h);
        let p = (self.scale * dot(q_i, self.x.kv_row(self.x.k, s, r, j, g)) - lse).exp();
        let do_i = head_row(self.d_o, s, s.q_heads, r, i, h);
        let dp = dot(do_i, self.x.kv_row(self.x.v, s, r, j, g));
        Some((p, p * (dp - self.stat(self.delta, r, h, i))))
    }

    /// dQ rows `[nq, d]` of one (row, q tile, q head).
    fn dq_tile(&self, r: usize, qt: usize, h: usize) -> Vec<f32> {
        let s = self.shape;
        let t = Tile::new(self.a, s, r, qt);
        let (d, g) = (s.head_dim, h / s.group());
        let mut dq = vec![0f32; (t.q1 - t.q0) * d];
        for (kt, class) in self.a.mask().q_list(r, qt) {
            let (k0, k1) = t.keys(kt);
            for i in t.q0..t.q1 {
                let dq_i = &mut dq[(i - t.q0) * d..(i - t.q0 + 1) * d];
                for j in k0..k1 {
                    if let Some((_, ds)) = self.pair(class, r, h, g, i, j) {
                        axpy(dq_i, ds, self.x.kv_row(self.x.k, s, r, j, g));
                    }
                }
            }
        }
        dq.iter_mut().for_each(|x| *x *= self.scale);
        dq
    }

    /// dK and dV rows `[nk, d]` of one (row, k tile, kv head), summed over the group's q heads.
    fn dkv_tile(&self, r: usize, kt: usize, g: usize) -> (Vec<f32>, Vec<f32>) {
        let s = self.shape;
        let (d, group) = (s.head_dim, s.group());
        let bk = self.a.mask().tile().block_k();
        let (k0, k1) = (kt * bk, ((kt + 1) * bk).min(s.n));
        let mut dk = vec![0f32; (k1 - k0) * d];
        let mut dv = vec![0f32; (k1 - k0) * d];
        for (qt, class) in self.a.mask().k_list(r, kt) {
            let t = Tile::new(self.a, s, r, qt);
            for h in g * group..(g + 1) * group {
                for i in t.q0..t.q1 {
                    let q_i = self.x.q_row(s, r, i, h);
                    let do_i = head_row(self.d_o, s, s.q_heads, r, i, h);
                    for j in k0..k1 {
                        if let Some((p, ds)) = self.pair(class, r, h, g, i, j) {
                            let at = (j - k0) * d;
                            axpy(&mut dv[at..at + d], p, do_i);
                            axpy(&mut dk[at..at + d], ds, q_i);
                        }
                    }
                }
            }
        }
        dk.iter_mut().for_each(|x| *x *= self.scale);
        (dk, dv)
    }
}
