//! GPU mode's training step for the dataset tables: one transformer block in bf16, forward and
//! backward, on every micro-batch of a format, timed with CUDA events (gpu.rs).
//!
//! Forward: cuBLAS QKV projection, our rotary kernel, our attention forward on strided views of
//! the fused QKV buffer, cuBLAS output projection, then the MLP (cuBLAS gate+up, our SwiGLU,
//! cuBLAS down). Backward: cuBLAS for every data and weight gradient GEMM (the same 12 GEMMs a
//! trainer runs), our attention backward (preprocess, dK/dV, dQ) and our rotary kernel in the
//! inverse direction on dQ and dK.
//!
//! Two stand-ins, both of the same shapes and cost class as what they replace, because the
//! library has no kernel for them yet: (1) `Gemm::matmul` has no transpose flag, so the operands
//! a trainer would read transposed (`X^T` in `dW = X^T dY`, `W^T` in `dX = dY W^T`) are random
//! buffers of the transposed shape (a GEMM's time does not depend on the values); (2) the SwiGLU
//! backward (element-wise) is two runs of the SwiGLU kernel writing the two halves of d(gate,
//! up). Residual adds and norms are left out (per-token, small next to the GEMMs).
//! The stand-ins cost the same in both formats per token, so they cannot favour either.

use cudarc::driver::{CudaSlice, CudaView};
use half::bf16;
use prefix_attn::attention::{BackwardTensors, BackwardWorkspace, Strides, View};
use prefix_attn::cpu::MatShape;
use prefix_attn::ops::rotary::{DevicePositions, Rotary, RotaryShape};
use prefix_attn::ops::swiglu::SwigluShape;
use prefix_attn::plan::Plan;
use prefix_attn::rotary::{RotaryDirection, RotaryTable, DEFAULT_THETA};
use prefix_attn::AttnShape;

use super::cases::Problem;
use super::driver::Timed;
use super::gpu::{err, Buf, Gpu};

/// One micro-batch's own device state.
struct Micro {
    shape: AttnShape,
    plan: Plan,
    rotary: Rotary,
    positions: DevicePositions,
    ws: BackwardWorkspace,
}

/// Buffers sized for the largest micro-batch, shared by all of a format's micro-batches.
struct Bufs {
    x: Buf,
    d_y: Buf,
    qkv: Buf,
    o: Buf,
    lse: CudaSlice<f32>,
    a: Buf,
    gu: Buf,
    act: Buf,
    y: Buf,
    d_act: Buf,
    d_gu: Buf,
    dh: Buf,
    d_o: Buf,
    dq: Buf,
    dk: Buf,
    dv: Buf,
    dx: Buf,
    dw: Buf,
    // Stand-ins for transposed operands (see the module doc).
    x_t: Buf,
    act_t: Buf,
    o_t: Buf,
    t_down: Buf,
    t_gate_up: Buf,
    t_o: Buf,
    t_q: Buf,
    t_k: Buf,
    t_v: Buf,
}

fn strided(buf: &Buf, from: usize, to: usize, strides: Strides) -> View<CudaView<'_, bf16>> {
    View::new(buf.slice(from..to), strides)
}

fn dense_of<'b>(
    buf: &'b Buf,
    len: usize,
    shape: &AttnShape,
    heads: usize,
) -> View<CudaView<'b, bf16>> {
    View::dense(buf.slice(..len), shape, heads)
}

fn mm(m: usize, k: usize, n: usize) -> MatShape {
    MatShape { m, k, n }
}

impl Gpu {
    /// Device state of every micro-batch, then a timer over the whole set (one call = one step
    /// on each micro-batch).
    pub fn train_step<'a>(&'a self, problems: &'a [Problem]) -> Result<Timed<'a>, String> {
        let gemm = self.gemm()?;
        let w = self.weights()?;
        let m = self.model;
        let (h, f, d) = (m.hidden, m.ffn, m.head_dim);
        let (qd, kvd) = (m.q_heads * d, m.kv_heads * d);
        let width = qd + 2 * kvd;
        let t_max = problems.iter().map(Problem::tokens).max().unwrap_or(0);
        let mut micro = Vec::new();
        let mut lse_max = 0;
        for p in problems {
            let shape = AttnShape {
                rows: p.rows(),
                n: p.n(),
                q_heads: m.q_heads,
                kv_heads: m.kv_heads,
                head_dim: d,
            };
            lse_max = lse_max.max(shape.lse_len());
            let table = RotaryTable::for_positions(d, &p.positions, DEFAULT_THETA).map_err(err)?;
            let rotary = Rotary::new(&self.device, &self.stream, table).map_err(err)?;
            let positions = rotary
                .upload_positions(&self.stream, &p.positions)
                .map_err(err)?;
            micro.push(Micro {
                plan: Plan::on_device(p.vis_end.clone(), &self.stream).map_err(err)?,
                ws: BackwardWorkspace::new(&self.stream, &shape).map_err(err)?,
                shape,
                rotary,
                positions,
            });
        }
        let t = t_max;
        let mut b = Bufs {
            x: self.random(t * h)?,
            d_y: self.random(t * h)?,
            qkv: self.zeros(t * width)?,
            o: self.zeros(t * qd)?,
            lse: self.stream.alloc_zeros(lse_max.max(1)).map_err(err)?,
            a: self.zeros(t * h)?,
            gu: self.zeros(t * 2 * f)?,
            act: self.zeros(t * f)?,
            y: self.zeros(t * h)?,
            d_act: self.zeros(t * f)?,
            d_gu: self.zeros(t * 2 * f)?,
            dh: self.zeros(t * h)?,
            d_o: self.zeros(t * qd)?,
            dq: self.zeros(t * qd)?,
            dk: self.zeros(t * kvd)?,
            dv: self.zeros(t * kvd)?,
            dx: self.zeros(t * h)?,
            dw: self.zeros(h * 2 * f.max(width))?,
            x_t: self.random(h * t)?,
            act_t: self.random(f * t)?,
            o_t: self.random(qd * t)?,
            t_down: self.random(h * f)?,
            t_gate_up: self.random(2 * f * h)?,
            t_o: self.random(h * qd)?,
            t_q: self.random(qd * h)?,
            t_k: self.random(kvd * h)?,
            t_v: self.random(kvd * h)?,
        };
        let scale = 1.0 / (d as f32).sqrt();
        self.timed(move || {
            for mb in micro.iter_mut() {
                let t = mb.shape.rows * mb.shape.n;
                let shape = &mb.shape.clone();
                let g = |a: &Buf, b: &Buf, c: &mut Buf, s: MatShape| {
                    gemm.matmul(
                        &a.slice(..s.m * s.k),
                        &b.slice(..s.k * s.n),
                        &mut c.slice_mut(..s.m * s.n),
                        s,
                    )
                    .map_err(err)
                };
                // Attention layer forward.
                g(&b.x, &w.qkv, &mut b.qkv, mm(t, h, width))?;
                let rot = |heads: usize, stride: usize| RotaryShape {
                    tokens: t,
                    heads,
                    head_dim: d,
                    token_stride: stride,
                };
                mb.rotary
                    .run(
                        &self.stream,
                        &rot(m.q_heads + m.kv_heads, width),
                        &mut b.qkv.slice_mut(..t * width),
                        &mb.positions,
                        RotaryDirection::Forward,
                    )
                    .map_err(err)?;
                let strides = Strides {
                    row: shape.n * width,
                    token: width,
                    head: d,
                };
                let at = |qkv, head| strided(qkv, head * d, t * width, strides);
                self.attention(
                    &mb.plan,
                    shape,
                    at(&b.qkv, 0),
                    at(&b.qkv, m.q_heads),
                    at(&b.qkv, m.q_heads + m.kv_heads),
                    &mut b.o,
                    b.lse.slice_mut(..shape.lse_len()),
                )?;
                g(&b.o, &w.o, &mut b.a, mm(t, qd, h))?;
                // MLP forward.
                g(&b.a, &w.gate_up, &mut b.gu, mm(t, h, 2 * f))?;
                let act = SwigluShape::fused(t, f);
                self.swiglu
                    .run(
                        &self.stream,
                        &act,
                        &b.gu.slice(..t * 2 * f),
                        &b.gu.slice(f..t * 2 * f),
                        &mut b.act.slice_mut(..t * f),
                    )
                    .map_err(err)?;
                g(&b.act, &w.down, &mut b.y, mm(t, f, h))?;
                // MLP backward.
                g(&b.d_y, &b.t_down, &mut b.d_act, mm(t, h, f))?;
                g(&b.act_t, &b.d_y, &mut b.dw, mm(f, t, h))?;
                let halves = SwigluShape {
                    tokens: t,
                    ffn: f,
                    gate_stride: 2 * f,
                    up_stride: 2 * f,
                    out_stride: 2 * f,
                };
                for half in [0, f] {
                    self.swiglu
                        .run(
                            &self.stream,
                            &halves,
                            &b.gu.slice(..t * 2 * f),
                            &b.gu.slice(f..t * 2 * f),
                            &mut b.d_gu.slice_mut(half..t * 2 * f),
                        )
                        .map_err(err)?;
                }
                g(&b.x_t, &b.d_gu, &mut b.dw, mm(h, t, 2 * f))?;
                g(&b.d_gu, &b.t_gate_up, &mut b.dh, mm(t, 2 * f, h))?;
                // Attention layer backward.
                g(&b.dh, &b.t_o, &mut b.d_o, mm(t, h, qd))?;
                g(&b.o_t, &b.dh, &mut b.dw, mm(qd, t, h))?;
                let dense = |buf, heads, len| dense_of(buf, len, shape, heads);
                let bt = BackwardTensors {
                    q: at(&b.qkv, 0),
                    k: at(&b.qkv, m.q_heads),
                    v: at(&b.qkv, m.q_heads + m.kv_heads),
                    o: dense(&b.o, m.q_heads, t * qd),
                    lse: b.lse.slice(..shape.lse_len()),
                    d_o: dense(&b.d_o, m.q_heads, t * qd),
                    dq: View::dense(b.dq.slice_mut(..t * qd), shape, m.q_heads),
                    dk: View::dense(b.dk.slice_mut(..t * kvd), shape, m.kv_heads),
                    dv: View::dense(b.dv.slice_mut(..t * kvd), shape, m.kv_heads),
                };
                self.backward
                    .run(&self.stream, &mb.plan, shape, bt, &mut mb.ws, scale)
                    .map_err(err)?;
                for (buf, heads, len) in [(&mut b.dq, m.q_heads, qd), (&mut b.dk, m.kv_heads, kvd)]
                {
                    mb.rotary
                        .run(
                            &self.stream,
                            &rot(heads, len),
                            &mut buf.slice_mut(..t * len),
                            &mb.positions,
                            RotaryDirection::Inverse,
                        )
                        .map_err(err)?;
                }
                g(&b.dq, &b.t_q, &mut b.dx, mm(t, qd, h))?;
                g(&b.dk, &b.t_k, &mut b.dx, mm(t, kvd, h))?;
                g(&b.dv, &b.t_v, &mut b.dx, mm(t, kvd, h))?;
                g(&b.x_t, &b.dq, &mut b.dw, mm(h, t, qd))?;
                g(&b.x_t, &b.dk, &mut b.dw, mm(h, t, kvd))?;
                g(&b.x_t, &b.dv, &mut b.dw, mm(h, t, kvd))?;
            }
            Ok(())
        })
    }
}
