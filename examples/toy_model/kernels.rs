//! The toy's attention layer through the crate's kernels on the CPU emulator, as a trainer calls
//! them: forward (O and LSE), then backward (dQ, dK, dV) from O, LSE and dO. The toy's head dim
//! (4) is zero-padded to the kernels' 64: the scores, O's real columns and every gradient's real
//! columns are unchanged, the padded columns stay zero. Values cross into the kernels as f16.

use half::f16;
use prefix_attn::attention::{
    backward_emulated, forward_emulated, HostBackwardTensors, HostTensors, View,
};
use prefix_attn::emu::Schedule;
use prefix_attn::mask::VisEnd;
use prefix_attn::plan::Plan;
use prefix_attn::{AttnShape, Result};

/// The kernels' head dim the toy's heads are padded to.
pub const KERNEL_HEAD_DIM: usize = 64;

/// One layer's kernel calls, padded to the kernels' head dim: what the tests check against the
/// reference and feed the error bounds.
#[derive(Debug, Clone)]
pub struct KernelCall {
    pub shape: AttnShape,
    pub vis_end: VisEnd,
    pub scale: f32,
    pub q: Vec<f16>,
    pub k: Vec<f16>,
    pub v: Vec<f16>,
    pub o: Vec<f16>,
    pub lse: Vec<f32>,
    pub d_o: Vec<f16>,
    pub dq: Vec<f16>,
    pub dk: Vec<f16>,
    pub dv: Vec<f16>,
}

/// `[tokens, heads * d]` f64 -> `[tokens, heads, KERNEL_HEAD_DIM]` f16, zero-padded.
fn pad(x: &[f64], heads: usize, d: usize) -> Vec<f16> {
    let tokens = x.len() / (heads * d);
    let mut out = vec![f16::ZERO; tokens * heads * KERNEL_HEAD_DIM];
    for t in 0..tokens {
        for h in 0..heads {
            for c in 0..d {
                out[(t * heads + h) * KERNEL_HEAD_DIM + c] =
                    f16::from_f64(x[(t * heads + h) * d + c]);
            }
        }
    }
    out
}

/// The inverse of [`pad`] (the padded columns dropped).
fn unpad(x: &[f16], heads: usize, d: usize) -> Vec<f64> {
    let tokens = x.len() / (heads * KERNEL_HEAD_DIM);
    let mut out = vec![0.0; tokens * heads * d];
    for t in 0..tokens {
        for h in 0..heads {
            for c in 0..d {
                out[(t * heads + h) * d + c] = x[(t * heads + h) * KERNEL_HEAD_DIM + c].to_f64();
            }
        }
    }
    out
}

/// O of the toy's attention (`[tokens, q_heads * d]`) through the forward kernel, and the call
/// (its backward half still empty).
pub fn forward(
    shape: &AttnShape,
    vis_end: &VisEnd,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    scale: f64,
) -> Result<(Vec<f64>, KernelCall)> {
    let d = shape.head_dim;
    let sh = AttnShape {
        head_dim: KERNEL_HEAD_DIM,
        ..*shape
    };
    let mut call = KernelCall {
        shape: sh,
        vis_end: vis_end.clone(),
        scale: scale as f32,
        q: pad(q, sh.q_heads, d),
        k: pad(k, sh.kv_heads, d),
        v: pad(v, sh.kv_heads, d),
        o: vec![f16::ZERO; sh.q_len()],
        lse: vec![0.0; sh.lse_len()],
        d_o: Vec::new(),
        dq: Vec::new(),
        dk: Vec::new(),
        dv: Vec::new(),
    };
    let plan = Plan::new(vis_end.clone())?;
    forward_emulated(
        &plan,
        &sh,
        HostTensors {
            q: View::dense(&call.q[..], &sh, sh.q_heads),
            k: View::dense(&call.k[..], &sh, sh.kv_heads),
            v: View::dense(&call.v[..], &sh, sh.kv_heads),
            o: View::dense(&mut call.o[..], &sh, sh.q_heads),
            lse: &mut call.lse[..],
        },
        call.scale,
        Schedule::Ascending,
    )?;
    Ok((unpad(&call.o, sh.q_heads, d), call))
}

/// dQ, dK, dV of the toy's attention (toy layouts) through the backward kernels, given dO
/// (`[tokens, q_heads * d]`); records dO and the gradients in `call`.
pub fn backward(
    call: &mut KernelCall,
    d: usize,
    d_o: &[f64],
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let sh = call.shape;
    call.d_o = pad(d_o, sh.q_heads, d);
    call.dq = vec![f16::ZERO; sh.q_len()];
    call.dk = vec![f16::ZERO; sh.kv_len()];
    call.dv = vec![f16::ZERO; sh.kv_len()];
    let plan = Plan::new(call.vis_end.clone())?;
    backward_emulated(
        &plan,
        &sh,
        HostBackwardTensors {
            q: View::dense(&call.q[..], &sh, sh.q_heads),
            k: View::dense(&call.k[..], &sh, sh.kv_heads),
            v: View::dense(&call.v[..], &sh, sh.kv_heads),
            o: View::dense(&call.o[..], &sh, sh.q_heads),
            lse: &call.lse[..],
            d_o: View::dense(&call.d_o[..], &sh, sh.q_heads),
            dq: View::dense(&mut call.dq[..], &sh, sh.q_heads),
            dk: View::dense(&mut call.dk[..], &sh, sh.kv_heads),
            dv: View::dense(&mut call.dv[..], &sh, sh.kv_heads),
        },
        call.scale,
        Schedule::Ascending,
    )?;
    Ok((
        unpad(&call.dq, sh.q_heads, d),
        unpad(&call.dk, sh.kv_heads, d),
        unpad(&call.dv, sh.kv_heads, d),
    ))
}
