//! CPU mode's training step for the dataset tables: one transformer block (attention layer with
//! rotary embedding, then the SwiGLU MLP, residuals around both), forward and backward, in f32
//! on the crate's CPU path: `prefix_attn::cpu::matmul` for every product, `CpuAttention`'s
//! block-skipping forward and backward, `apply_rotary` forward and inverse (the rotary's
//! gradient). Weight gradients are computed (a trainer needs them) but not applied. Norms are
//! left out: per-token work that changes both formats alike and is small next to the GEMMs.

use std::time::Instant;

use prefix_attn::cpu::{apply_rotary, available_threads, matmul, silu, CpuAttention, MatShape};
use prefix_attn::rotary::{RotaryDirection, RotaryTable, DEFAULT_THETA};
use prefix_attn::AttnShape;

use super::cases::Problem;
use super::config::Model;
use super::cpu::random;
use super::driver::Timed;

/// Weights and their transposes (the backward multiplies by `W^T`; a trainer would use a
/// transposed GEMM, which the CPU path does not have, so they are transposed once here).
pub struct Block {
    m: Model,
    threads: usize,
    w_qkv: Vec<f32>,
    w_o: Vec<f32>,
    w_gate: Vec<f32>,
    w_up: Vec<f32>,
    w_down: Vec<f32>,
    t_qkv: Vec<f32>,
    t_o: Vec<f32>,
    t_gate: Vec<f32>,
    t_up: Vec<f32>,
    t_down: Vec<f32>,
}

/// `a [rows, cols]` transposed to `[cols, rows]`.
pub fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; a.len()];
    // Blocks of 32 x 32 keep both sides in cache.
    for i0 in (0..rows).step_by(32) {
        for j0 in (0..cols).step_by(32) {
            for i in i0..(i0 + 32).min(rows) {
                for j in j0..(j0 + 32).min(cols) {
                    t[j * rows + i] = a[i * cols + j];
                }
            }
        }
    }
    t
}

fn scaled(len: usize, fan_in: usize, seed: u64) -> Vec<f32> {
    let a = 1.0 / (fan_in as f32).sqrt();
    random(len, seed).into_iter().map(|x| x * a).collect()
}

/// One micro-batch, prepared before timing.
struct Micro<'a> {
    p: &'a Problem,
    attn: CpuAttention,
    table: RotaryTable,
    x: Vec<f32>,
    d_y: Vec<f32>,
}

impl Block {
    pub fn new(m: Model) -> Self {
        let width = (m.q_heads + 2 * m.kv_heads) * m.head_dim;
        let qd = m.q_heads * m.head_dim;
        let w_qkv = scaled(m.hidden * width, m.hidden, 11);
        let w_o = scaled(qd * m.hidden, qd, 12);
        let w_gate = scaled(m.hidden * m.ffn, m.hidden, 13);
        let w_up = scaled(m.hidden * m.ffn, m.hidden, 14);
        let w_down = scaled(m.ffn * m.hidden, m.ffn, 15);
        Block {
            t_qkv: transpose(&w_qkv, m.hidden, width),
            t_o: transpose(&w_o, qd, m.hidden),
            t_gate: transpose(&w_gate, m.hidden, m.ffn),
            t_up: transpose(&w_up, m.hidden, m.ffn),
            t_down: transpose(&w_down, m.ffn, m.hidden),
            w_qkv,
            w_o,
            w_gate,
            w_up,
            w_down,
            m,
            threads: available_threads(),
        }
    }

    fn mm(
        &self,
        a: &[f32],
        b: &[f32],
        m: usize,
        k: usize,
        n: usize,
    ) -> prefix_attn::Result<Vec<f32>> {
        matmul(a, b, MatShape { m, k, n }, self.threads)
    }

    /// Forward and backward of the block on one micro-batch; returns the block's output `y` and
    /// `dx` for the loss `<d_y, y>` (the weight gradients are dropped once computed).
    fn step(&self, mb: &Micro<'_>) -> prefix_attn::Result<(Vec<f32>, Vec<f32>)> {
        let Model {
            hidden: h,
            q_heads: hq,
            kv_heads: hkv,
            head_dim: d,
            ffn: f,
        } = self.m;
        let p = mb.p;
        let t = p.tokens();
        let width = (hq + 2 * hkv) * d;
        let shape = AttnShape {
            rows: p.rows(),
            n: p.n(),
            q_heads: hq,
            kv_heads: hkv,
            head_dim: d,
        };
        let scale = 1.0 / (d as f32).sqrt();
        let x = &mb.x;

        // Attention layer forward.
        let mut qkv = self.mm(x, &self.w_qkv, t, h, width)?;
        apply_rotary(
            &mut qkv,
            width,
            hq + hkv,
            &p.positions,
            &mb.table,
            RotaryDirection::Forward,
        )?;
        let split = |from: usize, heads: usize| -> Vec<f32> {
            let cols = from * d..(from + heads) * d;
            qkv.chunks_exact(width)
                .flat_map(|r| r[cols.clone()].iter().copied())
                .collect()
        };
        let (q, k, v) = (split(0, hq), split(hq, hkv), split(hq + hkv, hkv));
        let out = mb.attn.forward(&shape, &q, &k, &v, scale)?;
        let a = self.mm(&out.o, &self.w_o, t, hq * d, h)?;
        let h1: Vec<f32> = x.iter().zip(&a).map(|(x, a)| x + a).collect();

        // MLP forward, with its residual.
        let g = self.mm(&h1, &self.w_gate, t, h, f)?;
        let u = self.mm(&h1, &self.w_up, t, h, f)?;
        let act: Vec<f32> = g.iter().zip(&u).map(|(&g, &u)| silu(g) * u).collect();
        let y2 = self.mm(&act, &self.w_down, t, f, h)?;
        let y: Vec<f32> = h1.iter().zip(&y2).map(|(a, b)| a + b).collect();

        // MLP backward.
        let d_y = &mb.d_y;
        let d_act = self.mm(d_y, &self.t_down, t, h, f)?;
        let _dw_down = self.mm(&transpose(&act, t, f), d_y, f, t, h)?;
        let mut dg = vec![0f32; t * f];
        let mut du = vec![0f32; t * f];
        for i in 0..t * f {
            let s = 1.0 / (1.0 + (-g[i]).exp());
            du[i] = d_act[i] * g[i] * s;
            dg[i] = d_act[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
        }
        let h1_t = transpose(&h1, t, h);
        let _dw_gate = self.mm(&h1_t, &dg, h, t, f)?;
        let _dw_up = self.mm(&h1_t, &du, h, t, f)?;
        let dh_g = self.mm(&dg, &self.t_gate, t, f, h)?;
        let dh_u = self.mm(&du, &self.t_up, t, f, h)?;
        let dh1: Vec<f32> = (0..t * h).map(|i| d_y[i] + dh_g[i] + dh_u[i]).collect();

        // Attention layer backward.
        let d_o = self.mm(&dh1, &self.t_o, t, h, hq * d)?;
        let _dw_o = self.mm(&transpose(&out.o, t, hq * d), &dh1, hq * d, t, h)?;
        let gr = mb.attn.backward(&shape, &q, &k, &v, &out, &d_o, scale)?;
        let mut dqkv = vec![0f32; t * width];
        for (i, r) in dqkv.chunks_exact_mut(width).enumerate() {
            r[..hq * d].copy_from_slice(&gr.dq[i * hq * d..(i + 1) * hq * d]);
            r[hq * d..(hq + hkv) * d].copy_from_slice(&gr.dk[i * hkv * d..(i + 1) * hkv * d]);
            r[(hq + hkv) * d..].copy_from_slice(&gr.dv[i * hkv * d..(i + 1) * hkv * d]);
        }
        apply_rotary(
            &mut dqkv,
            width,
            hq + hkv,
            &p.positions,
            &mb.table,
            RotaryDirection::Inverse,
        )?;
        let _dw_qkv = self.mm(&transpose(x, t, h), &dqkv, h, t, width)?;
        let dx_attn = self.mm(&dqkv, &self.t_qkv, t, width, h)?;
        let dx = dh1.iter().zip(&dx_attn).map(|(a, b)| a + b).collect();
        Ok((y, dx))
    }

    /// `(y, dx)` of one step on `p` with inputs `x` and `d_y` (`[tokens, hidden]` each), for
    /// tests that check the backward against finite differences of the forward.
    #[allow(dead_code)] // only tests/bench/sharing.rs calls it
    pub fn forward_backward(
        &self,
        p: &Problem,
        x: Vec<f32>,
        d_y: Vec<f32>,
    ) -> prefix_attn::Result<(Vec<f32>, Vec<f32>)> {
        let mb = Micro {
            p,
            attn: CpuAttention::new(p.vis_end.clone(), CpuAttention::default_tile())?,
            table: RotaryTable::for_positions(self.m.head_dim, &p.positions, DEFAULT_THETA)?,
            x,
            d_y,
        };
        self.step(&mb)
    }

    /// Inputs for every micro-batch, then a timer over the whole set (one call = one step on
    /// each micro-batch).
    pub fn prepare<'a>(&'a self, problems: &'a [Problem]) -> Result<Timed<'a>, String> {
        let err = |e: prefix_attn::Error| e.to_string();
        let micro: Vec<Micro<'a>> = problems
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let t = p.tokens() * self.m.hidden;
                Ok(Micro {
                    p,
                    attn: CpuAttention::new(p.vis_end.clone(), CpuAttention::default_tile())
                        .map_err(err)?,
                    table: RotaryTable::for_positions(self.m.head_dim, &p.positions, DEFAULT_THETA)
                        .map_err(err)?,
                    x: random(t, 100 + 2 * i as u64),
                    d_y: random(t, 101 + 2 * i as u64),
                })
            })
            .collect::<Result<_, String>>()?;
        let mut run: Timed<'a> = Box::new(move |calls| {
            let t0 = Instant::now();
            for _ in 0..calls {
                for mb in &micro {
                    self.step(mb)
                        .unwrap_or_else(|e| panic!("CPU step failed on checked inputs: {e}"));
                }
            }
            t0.elapsed()
        });
        // One untimed call: page faults and thread start-up stay out of the samples.
        run(1);
        Ok(run)
    }
}
