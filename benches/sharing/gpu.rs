//! GPU mode: bf16 on device 0, timed with CUDA events recorded around criterion's calls (device
//! time). The attention op is this crate's forward kernel, and forward + backward (the forward,
//! then the three backward kernels, as a training step runs them); the MLP is cuBLAS (gate and up as one
//! fused GEMM, down) around our SwiGLU kernel; the attention layer is cuBLAS QKV projection, our
//! rotary kernel on the Q and K heads with the layout's position ids, our forward reading Q, K
//! and V as strided views of the fused QKV buffer, and the cuBLAS output projection.
//!
//! Inputs are random (never zeros): a seeded pool of bf16 values in [-1, 1) uploaded once and
//! copied device to device over every buffer, so that filling gigabytes takes no host time.
//! Weights are made once per run. Every buffer of a problem is allocated, filled and warmed up
//! (3 calls, synchronised) before criterion starts.

use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut};
use half::bf16;
use prefix_attn::attention::{
    Backward, BackwardTensors, BackwardWorkspace, DeviceTensors, Forward, Strides, View,
};
use prefix_attn::cpu::MatShape;
use prefix_attn::cuda::Gpu as Device;
use prefix_attn::ops::gemm::Gemm;
use prefix_attn::ops::rotary::{Rotary, RotaryShape};
use prefix_attn::ops::swiglu::{Swiglu, SwigluShape};
use prefix_attn::plan::Plan;
use prefix_attn::rotary::{RotaryDirection, RotaryTable, DEFAULT_THETA};
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use super::gpu_peak::bf16_peak_tflops;

use super::cases::{Op, Problem};
use super::config::Model;
use super::driver::{Runner, Timed};

const WARMUP_CALLS: u64 = 3;
/// Elements of the random pool (8 MiB of bf16).
const POOL: usize = 4 << 20;

pub(crate) type Buf = CudaSlice<bf16>;

pub struct Gpu {
    pub(crate) device: Device,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) forward: Forward,
    pub(crate) backward: Backward,
    pub(crate) swiglu: Swiglu,
    /// `Err` (the reason) when libcublas is missing: the MLP and the layer are then not timed.
    gemm: Result<Gemm, String>,
    pool: Buf,
    pub(crate) model: Model,
    weights: std::cell::OnceCell<Weights>,
}

pub(crate) struct Weights {
    /// `[hidden, 2 ffn]`: gate columns, then up columns.
    pub(crate) gate_up: Buf,
    /// `[ffn, hidden]`.
    pub(crate) down: Buf,
    /// `[hidden, (q + 2 kv) heads * d]`.
    pub(crate) qkv: Buf,
    /// `[q heads * d, hidden]`.
    pub(crate) o: Buf,
}

/// `b` as a dense `[rows, n, heads, d]` view.
fn dense_view<'b>(shape: &AttnShape, b: &'b Buf, heads: usize) -> View<CudaView<'b, bf16>> {
    View::dense(b.as_view(), shape, heads)
}

pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Gpu {
    /// Device 0 with the kernels loaded; the error says why GPU mode is impossible.
    pub fn open(model: Model) -> Result<Self, String> {
        let device = Device::new(0).map_err(err)?;
        let forward = Forward::new(&device).map_err(|e| format!("forward kernels: {e}"))?;
        let backward = Backward::new(&device).map_err(|e| format!("backward kernels: {e}"))?;
        let swiglu = Swiglu::new(&device).map_err(|e| format!("SwiGLU kernel: {e}"))?;
        let stream = device.default_stream();
        let gemm = Gemm::new(stream.clone()).map_err(err);
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let host: Vec<bf16> = (0..POOL)
            .map(|_| bf16::from_f32(rng.random_range(-1.0f32..1.0)))
            .collect();
        let pool = stream.clone_htod(&host).map_err(err)?;
        Ok(Self {
            device,
            stream,
            forward,
            backward,
            swiglu,
            gemm,
            pool,
            model,
            weights: std::cell::OnceCell::new(),
        })
    }

    pub fn name(&self) -> String {
        self.device
            .context()
            .name()
            .unwrap_or_else(|_| "device 0".into())
    }

    /// A buffer of `len` random values (copies of the pool).
    pub(crate) fn random(&self, len: usize) -> Result<Buf, String> {
        // SAFETY: every element is written by the copies below before any kernel reads it.
        let mut buf: Buf = unsafe { self.stream.alloc(len) }.map_err(err)?;
        let mut at = 0;
        while at < len {
            let n = POOL.min(len - at);
            let mut dst = buf.slice_mut(at..at + n);
            self.stream
                .memcpy_dtod(&self.pool.slice(..n), &mut dst)
                .map_err(err)?;
            at += n;
        }
        Ok(buf)
    }

    pub(crate) fn zeros(&self, len: usize) -> Result<Buf, String> {
        self.stream.alloc_zeros(len).map_err(err)
    }

    pub(crate) fn weights(&self) -> Result<&Weights, String> {
        if let Some(w) = self.weights.get() {
            return Ok(w);
        }
        let m = &self.model;
        let w = Weights {
            gate_up: self.random(m.hidden * 2 * m.ffn)?,
            down: self.random(m.ffn * m.hidden)?,
            qkv: self.random(m.hidden * (m.q_heads + 2 * m.kv_heads) * m.head_dim)?,
            o: self.random(m.q_heads * m.head_dim * m.hidden)?,
        };
        Ok(self.weights.get_or_init(|| w))
    }

    pub(crate) fn gemm(&self) -> Result<&Gemm, String> {
        self.gemm.as_ref().map_err(|e| format!("cuBLAS: {e}"))
    }

    /// Times `calls` runs of `f` with CUDA events; `f` enqueues one call on the stream.
    pub(crate) fn timed<'a>(
        &'a self,
        mut f: impl FnMut() -> Result<(), String> + 'a,
    ) -> Result<Timed<'a>, String> {
        for _ in 0..WARMUP_CALLS {
            f()?;
        }
        self.stream.synchronize().map_err(err)?;
        let ctx = self.device.context();
        let start = ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(err)?;
        let end = ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(err)?;
        let stream = &self.stream;
        Ok(Box::new(move |calls| {
            start.record(stream).expect("record the start event");
            for _ in 0..calls {
                f().unwrap_or_else(|e| panic!("a warmed-up call failed: {e}"));
            }
            end.record(stream).expect("record the end event");
            // elapsed_ms waits for the end event: device time between the two.
            let ms = start.elapsed_ms(&end).expect("event elapsed time");
            Duration::from_secs_f64(f64::from(ms) * 1e-3)
        }))
    }

    fn shape(&self, p: &Problem) -> AttnShape {
        AttnShape {
            rows: p.rows(),
            n: p.n(),
            q_heads: self.model.q_heads,
            kv_heads: self.model.kv_heads,
            head_dim: self.model.head_dim,
        }
    }

    /// The crate's forward on views `q`, `k`, `v` (the one call site of the forward API); `lse`
    /// is exactly `[rows, q_heads, n]`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attention(
        &self,
        plan: &Plan,
        shape: &AttnShape,
        q: View<cudarc::driver::CudaView<'_, bf16>>,
        k: View<cudarc::driver::CudaView<'_, bf16>>,
        v: View<cudarc::driver::CudaView<'_, bf16>>,
        o: &mut Buf,
        lse: CudaViewMut<'_, f32>,
    ) -> Result<(), String> {
        let t = DeviceTensors {
            q,
            k,
            v,
            o: View::dense(o.as_view_mut(), shape, shape.q_heads),
            lse,
        };
        let scale = 1.0 / (shape.head_dim as f32).sqrt();
        self.forward
            .run(&self.stream, plan, shape, t, scale)
            .map_err(err)
    }
}

impl Runner for Gpu {
    fn step<'a>(&'a self, batches: &'a [Problem]) -> Result<Timed<'a>, String> {
        self.train_step(batches)
    }

    fn prepare<'a>(&'a self, op: Op, p: &'a Problem) -> Result<Timed<'a>, String> {
        let m = self.model;
        let tokens = p.tokens();
        let shape = self.shape(p);
        match op {
            Op::Mlp => {
                let gemm = self.gemm()?;
                let w = self.weights()?;
                let x = self.random(tokens * m.hidden)?;
                let mut gu = self.zeros(tokens * 2 * m.ffn)?;
                let mut h = self.zeros(tokens * m.ffn)?;
                let mut y = self.zeros(tokens * m.hidden)?;
                let act = SwigluShape::fused(tokens, m.ffn);
                self.timed(move || {
                    let up = MatShape {
                        m: tokens,
                        k: m.hidden,
                        n: 2 * m.ffn,
                    };
                    gemm.matmul(
                        &x.as_view(),
                        &w.gate_up.as_view(),
                        &mut gu.as_view_mut(),
                        up,
                    )
                    .map_err(err)?;
                    self.swiglu
                        .run(
                            &self.stream,
                            &act,
                            &gu.slice(..),
                            &gu.slice(m.ffn..),
                            &mut h.as_view_mut(),
                        )
                        .map_err(err)?;
                    let down = MatShape {
                        m: tokens,
                        k: m.ffn,
                        n: m.hidden,
                    };
                    gemm.matmul(&h.as_view(), &w.down.as_view(), &mut y.as_view_mut(), down)
                        .map_err(err)
                })
            }
            Op::AttnFwd => {
                let plan = Plan::on_device(p.vis_end.clone(), &self.stream).map_err(err)?;
                let (q, k, v) = (
                    self.random(shape.q_len())?,
                    self.random(shape.kv_len())?,
                    self.random(shape.kv_len())?,
                );
                let mut o = self.zeros(shape.q_len())?;
                let mut lse: CudaSlice<f32> =
                    self.stream.alloc_zeros(shape.lse_len()).map_err(err)?;
                self.timed(move || {
                    let qv = View::dense(q.as_view(), &shape, m.q_heads);
                    let kv = View::dense(k.as_view(), &shape, m.kv_heads);
                    let vv = View::dense(v.as_view(), &shape, m.kv_heads);
                    self.attention(&plan, &shape, qv, kv, vv, &mut o, lse.as_view_mut())
                })
            }
            Op::AttnFwdBwd => {
                let plan = Plan::on_device(p.vis_end.clone(), &self.stream).map_err(err)?;
                let (q, k, v, d_o) = (
                    self.random(shape.q_len())?,
                    self.random(shape.kv_len())?,
                    self.random(shape.kv_len())?,
                    self.random(shape.q_len())?,
                );
                let mut o = self.zeros(shape.q_len())?;
                let mut lse: CudaSlice<f32> =
                    self.stream.alloc_zeros(shape.lse_len()).map_err(err)?;
                let (mut dq, mut dk, mut dv) = (
                    self.zeros(shape.q_len())?,
                    self.zeros(shape.kv_len())?,
                    self.zeros(shape.kv_len())?,
                );
                let mut ws = BackwardWorkspace::new(&self.stream, &shape).map_err(err)?;
                let scale = 1.0 / (shape.head_dim as f32).sqrt();
                self.timed(move || {
                    self.attention(
                        &plan,
                        &shape,
                        dense_view(&shape, &q, m.q_heads),
                        dense_view(&shape, &k, m.kv_heads),
                        dense_view(&shape, &v, m.kv_heads),
                        &mut o,
                        lse.as_view_mut(),
                    )?;
                    let t = BackwardTensors {
                        q: dense_view(&shape, &q, m.q_heads),
                        k: dense_view(&shape, &k, m.kv_heads),
                        v: dense_view(&shape, &v, m.kv_heads),
                        o: dense_view(&shape, &o, m.q_heads),
                        lse: lse.as_view(),
                        d_o: dense_view(&shape, &d_o, m.q_heads),
                        dq: View::dense(dq.as_view_mut(), &shape, m.q_heads),
                        dk: View::dense(dk.as_view_mut(), &shape, m.kv_heads),
                        dv: View::dense(dv.as_view_mut(), &shape, m.kv_heads),
                    };
                    self.backward
                        .run(&self.stream, &plan, &shape, t, &mut ws, scale)
                        .map_err(err)
                })
            }
            Op::Layer => {
                let gemm = self.gemm()?;
                let w = self.weights()?;
                let plan = Plan::on_device(p.vis_end.clone(), &self.stream).map_err(err)?;
                let table = RotaryTable::for_positions(m.head_dim, &p.positions, DEFAULT_THETA)
                    .map_err(err)?;
                let rotary = Rotary::new(&self.device, &self.stream, table).map_err(err)?;
                let positions = rotary
                    .upload_positions(&self.stream, &p.positions)
                    .map_err(err)?;
                let width = (m.q_heads + 2 * m.kv_heads) * m.head_dim;
                let x = self.random(tokens * m.hidden)?;
                let mut qkv = self.zeros(tokens * width)?;
                let mut o = self.zeros(shape.q_len())?;
                let mut lse: CudaSlice<f32> =
                    self.stream.alloc_zeros(shape.lse_len()).map_err(err)?;
                let mut y = self.zeros(tokens * m.hidden)?;
                let rot = RotaryShape {
                    tokens,
                    heads: m.q_heads + m.kv_heads,
                    head_dim: m.head_dim,
                    token_stride: width,
                };
                // Q, K and V are views of the fused QKV rows: heads q, then kv, then kv.
                let strides = Strides {
                    row: p.n() * width,
                    token: width,
                    head: m.head_dim,
                };
                self.timed(move || {
                    let proj = MatShape {
                        m: tokens,
                        k: m.hidden,
                        n: width,
                    };
                    gemm.matmul(&x.as_view(), &w.qkv.as_view(), &mut qkv.as_view_mut(), proj)
                        .map_err(err)?;
                    rotary
                        .run(
                            &self.stream,
                            &rot,
                            &mut qkv.as_view_mut(),
                            &positions,
                            RotaryDirection::Forward,
                        )
                        .map_err(err)?;
                    let at = |head: usize| View::new(qkv.slice(head * m.head_dim..), strides);
                    let (qv, kv, vv) = (at(0), at(m.q_heads), at(m.q_heads + m.kv_heads));
                    self.attention(&plan, &shape, qv, kv, vv, &mut o, lse.as_view_mut())?;
                    let out = MatShape {
                        m: tokens,
                        k: m.q_heads * m.head_dim,
                        n: m.hidden,
                    };
                    gemm.matmul(&o.as_view(), &w.o.as_view(), &mut y.as_view_mut(), out)
                        .map_err(err)
                })
            }
        }
    }
}
