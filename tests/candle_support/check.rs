//! One case, run three ways and compared within derived bounds:
//!
//! 1. `prefix_attn::candle::attention` (bf16/f16) under candle's autograd;
//! 2. candle's own dense attention in f32 (dense.rs) on the same values, same autograd;
//! 3. the crate's f64 reference (through `prefix_attn::bounds`).
//!
//! Checks, none with a tolerance picked by hand:
//! - the op against the f64 reference within the crate's documented bounds (`ForwardBounds`
//!   per O element and LSE element, `BackwardBounds` per gradient norm, given the LSE the op
//!   kept);
//! - candle's dense f32 attention against the f64 reference within dense_bound.rs's per-element
//!   bounds (the derivation holds on these numbers);
//! - the op against candle's dense attention within the sum of the two: per element for O, in
//!   Frobenius norm for dQ, dK and dV (triangle inequality through the reference).
//!
//! The loss is sum(O * W) with W exactly representable in the dtype, so both graphs receive
//! exactly dO = W (candle's `to_dtype` backward rounds W to the dtype: exact).

use candle_core::{DType, Device, Result, Tensor, Var};
use prefix_attn::bounds::{BackwardBounds, ForwardBounds, ForwardRun, Grad, Gradients, Inputs};
use prefix_attn::{Plan, Scale};

use super::cases::{values, Case, Values};
use super::dense;
use super::dense_bound::{dense_bounds, norm};

/// How Q, K and V reach the op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Three dense `[rows, n, heads, d]` tensors.
    Dense,
    /// Narrowed (dim 2) from one fused `[rows, n, q_heads + 2 kv_heads, d]` QKV tensor: strided
    /// views the kernels read in place; the gradient is the fused tensor's.
    Fused,
    /// Q as the transpose of a `[rows, q_heads, n, d]` tensor (a head-major layout), K and V
    /// starting 4 elements (8 bytes) into a flat buffer: one read in place with unusual
    /// strides, two that the op first copies to an aligned layout.
    Odd,
}

/// What the op returned, widened.
pub struct OpRun {
    pub o: Vec<f64>,
    pub lse: Vec<f32>,
    pub dq: Vec<f64>,
    pub dk: Vec<f64>,
    pub dv: Vec<f64>,
}

fn flat(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()
}

fn tensor(
    x: &[f64],
    dims: (usize, usize, usize, usize),
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    Tensor::from_vec(x.to_vec(), dims, &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(dev)
}

/// The op forward and backward through candle's autograd, Q, K, V given as `layout` says.
pub fn run_op(case: &Case, x: &Values, plan: &Plan, layout: Layout, dev: &Device) -> Result<OpRun> {
    let sh = case.shape();
    let (rows, n, qh, kvh, d) = (sh.rows, sh.n, sh.q_heads, sh.kv_heads, sh.head_dim);
    let dt = case.dtype;
    let scale = Scale::default_for(d);
    let w = tensor(&x.d_o, (rows, n, qh, d), DType::F32, dev)?;
    let loss = |o: &Tensor| -> Result<Tensor> { (o.to_dtype(DType::F32)? * &w)?.sum_all() };
    match layout {
        Layout::Dense => {
            let q = Var::from_tensor(&tensor(&x.q, (rows, n, qh, d), dt, dev)?)?;
            let k = Var::from_tensor(&tensor(&x.k, (rows, n, kvh, d), dt, dev)?)?;
            let v = Var::from_tensor(&tensor(&x.v, (rows, n, kvh, d), dt, dev)?)?;
            let (o, lse) = prefix_attn::candle::attention_with_lse(&q, &k, &v, plan, scale)?;
            let grads = loss(&o)?.backward()?;
            Ok(OpRun {
                o: flat(&o)?,
                lse: lse.flatten_all()?.to_vec1::<f32>()?,
                dq: flat(grads.get(&q).expect("dq"))?,
                dk: flat(grads.get(&k).expect("dk"))?,
                dv: flat(grads.get(&v).expect("dv"))?,
            })
        }
        Layout::Fused => {
            let heads = qh + 2 * kvh;
            let mut fused = vec![0.0; rows * n * heads * d];
            for t in 0..rows * n {
                let at = t * heads * d;
                fused[at..at + qh * d].copy_from_slice(&x.q[t * qh * d..(t + 1) * qh * d]);
                let at = at + qh * d;
                fused[at..at + kvh * d].copy_from_slice(&x.k[t * kvh * d..(t + 1) * kvh * d]);
                let at = at + kvh * d;
                fused[at..at + kvh * d].copy_from_slice(&x.v[t * kvh * d..(t + 1) * kvh * d]);
            }
            let qkv = Var::from_tensor(&tensor(&fused, (rows, n, heads, d), dt, dev)?)?;
            let q = qkv.narrow(2, 0, qh)?;
            let k = qkv.narrow(2, qh, kvh)?;
            let v = qkv.narrow(2, qh + kvh, kvh)?;
            assert!(!q.is_contiguous() && !k.is_contiguous(), "strided views");
            let (o, lse) = prefix_attn::candle::attention_with_lse(&q, &k, &v, plan, scale)?;
            let grads = loss(&o)?.backward()?;
            let g = grads.get(&qkv).expect("d qkv");
            Ok(OpRun {
                o: flat(&o)?,
                lse: lse.flatten_all()?.to_vec1::<f32>()?,
                dq: flat(&g.narrow(2, 0, qh)?)?,
                dk: flat(&g.narrow(2, qh, kvh)?)?,
                dv: flat(&g.narrow(2, qh + kvh, kvh)?)?,
            })
        }
        Layout::Odd => {
            // Q head-major, then viewed token-major: strides (row qh*n*d, token d, head n*d).
            let mut head_major = vec![0.0; x.q.len()];
            for r in 0..rows {
                for i in 0..n {
                    for h in 0..qh {
                        let src = ((r * n + i) * qh + h) * d;
                        let dst = ((r * qh + h) * n + i) * d;
                        head_major[dst..dst + d].copy_from_slice(&x.q[src..src + d]);
                    }
                }
            }
            let qv = Var::from_tensor(&tensor(&head_major, (rows, qh, n, d), dt, dev)?)?;
            let q = qv.transpose(1, 2)?;
            // K and V 4 elements into flat buffers: offset 8 bytes, not a multiple of 16.
            let shifted = |x: &[f64]| -> Result<Var> {
                let mut buf = vec![0.0; x.len() + 4];
                buf[4..].copy_from_slice(x);
                let t = Tensor::from_vec(buf, x.len() + 4, &Device::Cpu)?
                    .to_dtype(dt)?
                    .to_device(dev)?;
                Var::from_tensor(&t)
            };
            let (kf, vf) = (shifted(&x.k)?, shifted(&x.v)?);
            let k = kf.narrow(0, 4, x.k.len())?.reshape((rows, n, kvh, d))?;
            let v = vf.narrow(0, 4, x.v.len())?.reshape((rows, n, kvh, d))?;
            assert_eq!(k.layout().start_offset(), 4);
            let (o, lse) = prefix_attn::candle::attention_with_lse(&q, &k, &v, plan, scale)?;
            let grads = loss(&o)?.backward()?;
            let dq = grads.get(&qv).expect("dq").transpose(1, 2)?;
            let unshift = |g: &Tensor, len: usize| -> Result<Vec<f64>> {
                let all = flat(g)?;
                assert!(all[..4].iter().all(|&x| x == 0.0), "no gradient before K/V");
                Ok(all[4..4 + len].to_vec())
            };
            Ok(OpRun {
                o: flat(&o)?,
                lse: lse.flatten_all()?.to_vec1::<f32>()?,
                dq: flat(&dq)?,
                dk: unshift(grads.get(&kf).expect("dk"), x.k.len())?,
                dv: unshift(grads.get(&vf).expect("dv"), x.v.len())?,
            })
        }
    }
}

/// candle's dense f32 attention and its gradients on the same values (always on the CPU: it is
/// the comparison, and its bound is for candle's CPU kernels).
pub fn run_dense(case: &Case, x: &Values) -> Result<[Vec<f64>; 4]> {
    let sh = case.shape();
    let (rows, n, qh, kvh, d) = (sh.rows, sh.n, sh.q_heads, sh.kv_heads, sh.head_dim);
    let cpu = Device::Cpu;
    let q = Var::from_tensor(&tensor(&x.q, (rows, n, qh, d), DType::F32, &cpu)?)?;
    let k = Var::from_tensor(&tensor(&x.k, (rows, n, kvh, d), DType::F32, &cpu)?)?;
    let v = Var::from_tensor(&tensor(&x.v, (rows, n, kvh, d), DType::F32, &cpu)?)?;
    let w = tensor(&x.d_o, (rows, n, qh, d), DType::F32, &cpu)?;
    let o = dense::attention(&q, &k, &v, &case.vis_end(), Scale::default_for(d).get())?;
    let grads = (&o * &w)?.sum_all()?.backward()?;
    Ok([
        flat(&o)?,
        flat(grads.get(&q).expect("dq"))?,
        flat(grads.get(&k).expect("dk"))?,
        flat(grads.get(&v).expect("dv"))?,
    ])
}

/// How close each comparison came to its bound (error / bound; each must be <= 1).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ratios {
    /// Op vs f64 reference: worst O element, and dQ, dK, dV norms.
    pub op_ref: [f64; 4],
    /// Dense f32 vs f64 reference: worst element of O, dQ, dK, dV.
    pub dense_ref: [f64; 4],
    /// Op vs dense f32: worst O element, and dQ, dK, dV norms.
    pub op_dense: [f64; 4],
}

impl Ratios {
    pub fn worst(&self) -> f64 {
        self.op_ref
            .iter()
            .chain(&self.dense_ref)
            .chain(&self.op_dense)
            .cloned()
            .fold(0.0, f64::max)
    }
}

impl std::fmt::Display for Ratios {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let row =
            |x: &[f64; 4]| format!("O {:.3} dQ {:.3} dK {:.3} dV {:.3}", x[0], x[1], x[2], x[3]);
        write!(
            f,
            "error/bound: op vs f64 [{}], dense f32 vs f64 [{}], op vs dense [{}]",
            row(&self.op_ref),
            row(&self.dense_ref),
            row(&self.op_dense)
        )
    }
}

/// Largest |a - b| / bound over elements (0 / 0 counts as 0; a difference over a zero bound as
/// infinity).
fn worst_elementwise(a: &[f64], b: &[f64], bound: impl Fn(usize) -> f64) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| {
            let (diff, bd) = ((x - y).abs(), bound(i));
            if diff == 0.0 {
                0.0
            } else if bd == 0.0 {
                f64::INFINITY
            } else {
                diff / bd
            }
        })
        .fold(0.0, f64::max)
}

fn l2_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Runs `case` through the op (Q, K, V as `layout` says, on `dev`, whose forward ran as `run`
/// describes for the bounds) and through candle's dense f32 attention, checks everything the
/// module docs list, and returns the ratios. Panics, naming the case, on any violation.
pub fn check_case(case: &Case, layout: Layout, dev: &Device, run: ForwardRun) -> Ratios {
    let plan = Plan::new(case.vis_end()).unwrap();
    check_case_with(case, &plan, layout, dev, run)
}

/// [`check_case`] with the plan given (made from the case's rows some other way: a `Batch`).
pub fn check_case_with(
    case: &Case,
    plan: &Plan,
    layout: Layout,
    dev: &Device,
    run: ForwardRun,
) -> Ratios {
    let sh = case.shape();
    let x = values(case);
    let vis_end = case.vis_end();
    assert_eq!(plan.vis_end(), &vis_end, "the plan is for the case's rows");
    let op = run_op(case, &x, plan, layout, dev)
        .unwrap_or_else(|e| panic!("{}: the op failed: {e}", case.name));
    let [o_d, dq_d, dk_d, dv_d] =
        run_dense(case, &x).unwrap_or_else(|e| panic!("{}: dense failed: {e}", case.name));
    let scale = Scale::default_for(sh.head_dim);
    let inputs = Inputs {
        shape: sh,
        vis_end: &vis_end,
        q: &x.q,
        k: &x.k,
        v: &x.v,
        scale,
    };
    let name = case.name;
    let mut r = Ratios::default();

    // 1. The op against the f64 reference, within the crate's bounds.
    let fwd = ForwardBounds::new(inputs, run).unwrap();
    let fs = fwd
        .check(&op.o, &op.lse)
        .unwrap_or_else(|v| panic!("{name}: op forward vs f64 reference: {v}"));
    r.op_ref[0] = fs.o_worst.error / fs.o_worst.bound;
    let bwd = BackwardBounds::new(inputs, &x.d_o, run.dtype).unwrap();
    let grads = Gradients {
        dq: &op.dq[..],
        dk: &op.dk[..],
        dv: &op.dv[..],
    };
    let bs = bwd
        .check(&op.lse, grads)
        .unwrap_or_else(|v| panic!("{name}: op backward vs f64 reference: {v}"));
    for g in Grad::ALL {
        let m = bs.grads[g as usize];
        r.op_ref[1 + g as usize] = if m.error == 0.0 {
            0.0
        } else {
            m.error / m.bound
        };
    }

    // 2. candle's dense f32 attention against the f64 reference, within dense_bound.rs.
    let db = dense_bounds(&sh, &vis_end, &x.q, &x.k, &x.v, &x.d_o, scale.as_f64());
    let reference = fwd.reference();
    r.dense_ref[0] = worst_elementwise(&o_d, &reference.o, |i| db.o[i]);
    for (g, got, bound) in [
        (Grad::Dq, &dq_d, &db.dq),
        (Grad::Dk, &dk_d, &db.dk),
        (Grad::Dv, &dv_d, &db.dv),
    ] {
        r.dense_ref[1 + g as usize] = worst_elementwise(got, bwd.reference(g), |i| bound[i]);
    }
    assert!(
        r.dense_ref.iter().all(|&x| x <= 1.0),
        "{name}: candle's dense f32 attention beyond its derived bound: {r}"
    );

    // 3. The op against candle's dense attention, within the sum of the two bounds.
    r.op_dense[0] = worst_elementwise(&op.o, &o_d, |i| fwd.o()[i] + db.o[i]);
    for (g, ours, theirs, bound) in [
        (Grad::Dq, &op.dq, &dq_d, &db.dq),
        (Grad::Dk, &op.dk, &dk_d, &db.dk),
        (Grad::Dv, &op.dv, &dv_d, &db.dv),
    ] {
        let diff = l2_diff(ours, theirs);
        let b = bs.grads[g as usize].bound + norm(bound);
        r.op_dense[1 + g as usize] = if diff == 0.0 { 0.0 } else { diff / b };
    }
    assert!(
        r.op_dense.iter().all(|&x| x <= 1.0),
        "{name}: the op and candle's dense attention differ beyond the sum of their bounds: {r}"
    );
    eprintln!("{name} ({layout:?}): {r}");
    r
}
