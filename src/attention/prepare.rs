//! Launch preparation of the forward kernels: the one function that checks a call and turns it
//! into a kernel choice, a parameter struct and launch dims. The GPU path ([`super::Forward`])
//! and the emulator path ([`super::forward_emulated`]) both call it, with device or host
//! addresses; nothing else computes launch state.

use crate::error::{Error, Result};
use crate::ffi::params::{PaAttnFwdParams, PaAttnQkv, PaBlockList, PaView};
use crate::launch::LaunchDims;
use crate::mask::BlockMask;
use crate::registry::{KernelDtype, KernelInfo, KernelRef};
use crate::shape::AttnShape;

use super::configs::tile_shape;
use super::view::{check_view, RawView};

/// A prepared forward launch.
#[derive(Debug, Clone, Copy)]
pub struct ForwardLaunch {
    pub kernel: KernelRef<PaAttnFwdParams>,
    pub params: PaAttnFwdParams,
    pub dims: LaunchDims,
}

/// Addresses (device or host) of one direction of a plan's block lists at one tile shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListAddrs {
    pub(crate) offsets: u64,
    pub(crate) entries: u64,
    pub(crate) order: u64,
}

/// Everything one forward call is given, as lengths and addresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForwardCall<'a> {
    /// The kernel chosen for the call (attention::configs).
    pub(crate) kernel: &'static KernelInfo,
    /// The plan's block lists at the kernel's tile, their q-major addresses, and vis_end's.
    pub(crate) mask: &'a BlockMask,
    pub(crate) q_major: ListAddrs,
    pub(crate) vis_end: u64,
    pub(crate) shape: &'a AttnShape,
    pub(crate) dtype: KernelDtype,
    pub(crate) q: RawView,
    pub(crate) k: RawView,
    pub(crate) v: RawView,
    pub(crate) o: RawView,
    pub(crate) lse_len: usize,
    pub(crate) lse_addr: u64,
    pub(crate) scale: f32,
}

fn view(v: &RawView, stride: crate::ffi::params::PaStrides) -> PaView {
    PaView {
        ptr: v.addr as usize as *mut core::ffi::c_void,
        stride,
    }
}

/// Checks a forward call and prepares its launch.
pub(crate) fn prepare_forward(c: &ForwardCall<'_>) -> Result<ForwardLaunch> {
    let shape = c.shape;
    shape.validate()?;
    let kernel = KernelRef::<PaAttnFwdParams>::new(c.kernel)?;
    let info = c.kernel;
    let tile = info.tile.ok_or_else(|| Error::InvalidArgument {
        what: "kernel",
        detail: format!("{} has no tile configuration", info.name),
    })?;
    if info.dtype != c.dtype || info.head_dim as usize != shape.head_dim {
        return Err(Error::InvalidArgument {
            what: "kernel",
            detail: format!(
                "{} is for {:?} at head dim {}, the call is {:?} at head dim {}",
                info.name, info.dtype, info.head_dim, c.dtype, shape.head_dim
            ),
        });
    }
    let mask = c.mask;
    if mask.tile() != tile_shape(tile) {
        return Err(Error::InvalidArgument {
            what: "plan",
            detail: format!(
                "block lists were built for tile {:?}, {} uses {:?}",
                mask.tile(),
                info.name,
                tile_shape(tile)
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
        qkv: PaAttnQkv {
            q: view(&c.q, q_stride),
            k: view(&c.k, k_stride),
            v: view(&c.v, v_stride),
            vis_end: c.vis_end as usize as *const i32,
            n: shape.n as i32,
            q_heads: shape.q_heads as i32,
            kv_group: shape.group() as i32,
            scale: c.scale,
            scale_log2: c.scale * std::f32::consts::LOG2_E,
            _pad0: 0,
        },
        q_major: PaBlockList {
            offsets: c.q_major.offsets as usize as *const i32,
            entries: c.q_major.entries as usize as *const i32,
            order: c.q_major.order as usize as *const i32,
            tiles: mask.q_tiles() as i32,
            _pad0: 0,
        },
        o: view(&c.o, o_stride),
        lse: c.lse_addr as usize as *mut f32,
    };
    let dims = LaunchDims::linear(ctas as u32, info.threads, info.smem_bytes);
    Ok(ForwardLaunch {
        kernel,
        params,
        dims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::configs::select_forward;
    use crate::attention::Strides;
    use crate::mask::VisEnd;
    use crate::plan::Plan;
    use crate::registry::{Arch, TileConfig};

    #[test]
    fn dims_and_params_follow_the_kernel_and_the_plan() {
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
        let tile = TileConfig::new(64, 64, 4, 2);
        let kernel =
            select_forward(Arch::Sm80, KernelDtype::F16, 128, Some(tile), |_| true).unwrap();
        let call = |kernel| ForwardCall {
            kernel,
            mask: plan.mask(super::tile_shape(tile)).unwrap(),
            q_major: ListAddrs {
                offsets: 0x2000,
                entries: 0x3000,
                order: 0x4000,
            },
            vis_end: 0x1000,
            shape: &shape,
            dtype: KernelDtype::F16,
            q: view(8, 0x10000),
            k: view(2, 0x20000),
            v: view(2, 0x30000),
            o: view(8, 0x40000),
            lse_len: shape.lse_len(),
            lse_addr: 0x50000,
            scale: 0.5,
        };
        let launch = prepare_forward(&call(kernel)).unwrap();
        assert_eq!(launch.kernel.name(), kernel.name);
        assert_eq!(launch.dims.grid, [2 * 3 * 8, 1, 1]);
        assert_eq!(launch.dims.block, [128, 1, 1]);
        // Q, two stages of K and of V, two stages of the k tiles' vis_end.
        assert_eq!(launch.dims.smem_bytes, (64 + 4 * 64) * 128 * 2 + 2 * 64 * 4);
        let p = launch.params;
        assert_eq!(
            (p.qkv.n, p.qkv.q_heads, p.qkv.kv_group, p.q_major.tiles),
            (130, 8, 4, 3)
        );
        assert_eq!(p.qkv.q.stride.token, 8 * 128);
        assert_eq!(p.qkv.k.stride.row, (130 * 2 * 128) as i64);
        assert_eq!(p.qkv.scale, 0.5);
        assert!((p.qkv.scale_log2 - 0.5 * std::f32::consts::LOG2_E).abs() < 1e-7);
        assert_eq!(p.q_major.entries as usize, 0x3000);

        // A kernel of another tile than the plan's lists, or of another dtype: typed errors.
        let other = select_forward(
            Arch::Sm80,
            KernelDtype::F16,
            128,
            Some(TileConfig::new(128, 64, 8, 2)),
            |_| true,
        )
        .unwrap();
        assert!(prepare_forward(&call(other)).is_err());
        let bf16 =
            select_forward(Arch::Sm80, KernelDtype::Bf16, 128, Some(tile), |_| true).unwrap();
        assert!(prepare_forward(&call(bf16)).is_err());
    }
}
