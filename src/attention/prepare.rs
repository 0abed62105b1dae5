//! Launch preparation of the forward kernels: the one function that checks a call and turns it
//! into a kernel choice, a parameter struct and launch dims. The GPU path ([`super::Forward`])
//! and the emulator path ([`super::forward_emulated`]) both call it, with device or host
//! addresses; nothing else computes launch state.

use crate::error::{Error, Result};
use crate::ffi::params::{PaAttnFwdParams, PA_FWD_BLOCK_K, PA_FWD_BLOCK_Q, PA_FWD_THREADS};
use crate::launch::LaunchDims;
use crate::mask::BlockMask;
use crate::plan::forward_tile;
use crate::shape::AttnShape;

use super::view::{check_view, RawView};

/// Head dims with a forward kernel.
pub const SUPPORTED_HEAD_DIMS: [usize; 2] = [64, 128];

/// One instantiation of the forward kernel (csrc/kernels/attn_fwd.cu).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardKernel {
    Bf16D64,
    Bf16D128,
    F16D64,
    F16D128,
}

impl ForwardKernel {
    /// Every instantiation, in a fixed order (index = position).
    pub const ALL: [ForwardKernel; 4] = [
        ForwardKernel::Bf16D64,
        ForwardKernel::Bf16D128,
        ForwardKernel::F16D64,
        ForwardKernel::F16D128,
    ];

    /// The kernel for a dtype and head dim, or `UnsupportedHeadDim`.
    pub fn select(is_bf16: bool, head_dim: usize) -> Result<Self> {
        use ForwardKernel::*;
        Ok(match (is_bf16, head_dim) {
            (true, 64) => Bf16D64,
            (true, 128) => Bf16D128,
            (false, 64) => F16D64,
            (false, 128) => F16D128,
            _ => return Err(Error::UnsupportedHeadDim { head_dim }),
        })
    }

    /// Exported symbol.
    pub fn name(self) -> &'static str {
        use ForwardKernel::*;
        match self {
            Bf16D64 => "pa_attn_fwd_bf16_d64",
            Bf16D128 => "pa_attn_fwd_bf16_d128",
            F16D64 => "pa_attn_fwd_f16_d64",
            F16D128 => "pa_attn_fwd_f16_d128",
        }
    }

    pub fn head_dim(self) -> usize {
        use ForwardKernel::*;
        match self {
            Bf16D64 | F16D64 => 64,
            Bf16D128 | F16D128 => 128,
        }
    }

    /// Position in [`ForwardKernel::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Dynamic shared memory of the forward at `head_dim`: the Q tile plus double-buffered K and V
/// tiles of 2-byte elements (FwdTraits::kSmemBytes in csrc/attn/traits.cuh).
pub fn forward_smem_bytes(head_dim: usize) -> u32 {
    ((PA_FWD_BLOCK_Q as usize + 4 * PA_FWD_BLOCK_K as usize) * head_dim * 2) as u32
}

/// A prepared forward launch.
#[derive(Debug, Clone, Copy)]
pub struct ForwardLaunch {
    pub kernel: ForwardKernel,
    pub params: PaAttnFwdParams,
    pub dims: LaunchDims,
}

/// Addresses of the plan's forward arrays (device or host).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanAddrs {
    pub(crate) vis_end: u64,
    pub(crate) q_offsets: u64,
    pub(crate) q_entries: u64,
    pub(crate) heaviest_first: u64,
}

/// Everything one forward call is given, as lengths and addresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForwardCall<'a> {
    pub(crate) mask: &'a BlockMask,
    pub(crate) plan: PlanAddrs,
    pub(crate) shape: &'a AttnShape,
    pub(crate) is_bf16: bool,
    pub(crate) q: RawView,
    pub(crate) k: RawView,
    pub(crate) v: RawView,
    pub(crate) o: RawView,
    pub(crate) lse_len: usize,
    pub(crate) lse_addr: u64,
    pub(crate) scale: f32,
}

/// Checks a forward call and prepares its launch.
pub(crate) fn prepare_forward(c: &ForwardCall<'_>) -> Result<ForwardLaunch> {
    let shape = c.shape;
    shape.validate()?;
    let kernel = ForwardKernel::select(c.is_bf16, shape.head_dim)?;
    let mask = c.mask;
    if mask.tile() != forward_tile() {
        return Err(Error::InvalidArgument {
            what: "plan",
            detail: format!(
                "forward block lists were built for tile {:?}, the kernels use {:?}",
                mask.tile(),
                forward_tile()
            ),
        });
    }
    if mask.rows() != shape.rows {
        return Err(Error::LengthMismatch {
            what: "rows (plan vs shape)",
            expected: mask.rows(),
            got: shape.rows,
        });
    }
    if mask.n() != shape.n {
        return Err(Error::LengthMismatch {
            what: "tokens per row n (plan vs shape)",
            expected: mask.n(),
            got: shape.n,
        });
    }
    if !(c.scale.is_finite() && c.scale > 0.0) {
        return Err(Error::InvalidArgument {
            what: "softmax scale",
            detail: format!("{} is not finite and positive", c.scale),
        });
    }
    let q_stride = check_view("q", &c.q, shape, shape.q_heads, false)?;
    let k_stride = check_view("k", &c.k, shape, shape.kv_heads, false)?;
    let v_stride = check_view("v", &c.v, shape, shape.kv_heads, false)?;
    let o_stride = check_view("o", &c.o, shape, shape.q_heads, true)?;
    if c.lse_len != shape.lse_len() {
        return Err(Error::LengthMismatch {
            what: "lse ([rows, q_heads, n] f32)",
            expected: shape.lse_len(),
            got: c.lse_len,
        });
    }
    if c.lse_addr % 4 != 0 {
        return Err(Error::InvalidView {
            what: "lse",
            detail: format!("address {:#x} is not 4-byte aligned", c.lse_addr),
        });
    }
    let ctas = (mask.rows() * mask.q_tiles()) as u128 * shape.q_heads as u128;
    if ctas > i32::MAX as u128 {
        return Err(Error::IndexOverflow {
            what: "forward CTAs (rows * q_tiles * q_heads)",
            value: ctas,
        });
    }
    // LSE is indexed as ((row * q_heads + head) * n + i) in int64 by the kernel; the shape's
    // validation bounds it.

    let params = PaAttnFwdParams {
        q: c.q.addr as usize as *const _,
        k: c.k.addr as usize as *const _,
        v: c.v.addr as usize as *const _,
        o: c.o.addr as usize as *mut _,
        lse: c.lse_addr as usize as *mut f32,
        vis_end: c.plan.vis_end as usize as *const i32,
        q_offsets: c.plan.q_offsets as usize as *const i32,
        q_entries: c.plan.q_entries as usize as *const i32,
        heaviest_first: c.plan.heaviest_first as usize as *const i32,
        q_stride,
        k_stride,
        v_stride,
        o_stride,
        rows: shape.rows as i32,
        n: shape.n as i32,
        q_heads: shape.q_heads as i32,
        kv_group: shape.group() as i32,
        q_tiles: mask.q_tiles() as i32,
        scale: c.scale,
        scale_log2: c.scale * std::f32::consts::LOG2_E,
        _pad0: 0,
    };
    let dims = LaunchDims {
        grid: [ctas as u32, 1, 1],
        block: [PA_FWD_THREADS, 1, 1],
        smem_bytes: forward_smem_bytes(shape.head_dim),
    };
    Ok(ForwardLaunch {
        kernel,
        params,
        dims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::Strides;
    use crate::mask::VisEnd;
    use crate::plan::Plan;

    #[test]
    fn dims_and_params_follow_the_plan() {
        let n = 130; // 3 q tiles of 64
        let plan =
            Plan::new(VisEnd::from_rows(&[vec![n as i32; n], vec![n as i32; n]]).unwrap()).unwrap();
        let shape = AttnShape {
            rows: 2,
            n,
            q_heads: 8,
            kv_heads: 2,
            head_dim: 128,
        };
        let view = |heads: usize, addr: u64| RawView {
            len: shape.rows * n * heads * 128,
            addr,
            strides: Strides::dense(n, heads, 128),
        };
        let launch = prepare_forward(&ForwardCall {
            mask: plan.forward_mask(),
            plan: PlanAddrs {
                vis_end: 0x1000,
                q_offsets: 0x2000,
                q_entries: 0x3000,
                heaviest_first: 0x4000,
            },
            shape: &shape,
            is_bf16: false,
            q: view(8, 0x10000),
            k: view(2, 0x20000),
            v: view(2, 0x30000),
            o: view(8, 0x40000),
            lse_len: shape.lse_len(),
            lse_addr: 0x50000,
            scale: 0.5,
        })
        .unwrap();
        assert_eq!(launch.kernel, ForwardKernel::F16D128);
        assert_eq!(launch.dims.grid, [2 * 3 * 8, 1, 1]);
        assert_eq!(launch.dims.block, [128, 1, 1]);
        assert_eq!(launch.dims.smem_bytes, (64 + 4 * 64) * 128 * 2);
        let p = launch.params;
        assert_eq!(
            (p.rows, p.n, p.q_heads, p.kv_group, p.q_tiles),
            (2, 130, 8, 4, 3)
        );
        assert_eq!(p.q_stride.token, 8 * 128);
        assert_eq!(p.k_stride.row, (130 * 2 * 128) as i64);
        assert_eq!(p.scale, 0.5);
        assert!((p.scale_log2 - 0.5 * std::f32::consts::LOG2_E).abs() < 1e-7);
        assert_eq!(p.q_entries as usize, 0x3000);
    }
}
