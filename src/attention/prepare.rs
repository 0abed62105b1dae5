//! Launch preparation of the forward kernels: the one function that checks a call and turns it
//! into a kernel choice, a parameter struct and launch dims. The GPU path ([`super::Forward`])
//! and the emulator path ([`super::forward_emulated`]) both call it, with device or host
//! addresses; nothing else computes launch state.

use crate::error::Result;
use crate::ffi::params::PaAttnFwdParams;
use crate::launch::LaunchDims;
use crate::mask::BlockMask;
use crate::registry::{KernelDtype, KernelInfo, KernelRef};
use crate::shape::AttnShape;

pub(crate) use super::checks::ListAddrs;
use super::checks::{
    check_lse, check_plan, check_scale, grid_ctas, kernel_tile, pa_view, qkv_params,
};
use super::view::{check_view, RawView};

/// A prepared forward launch.
#[derive(Debug, Clone, Copy)]
pub struct ForwardLaunch {
    pub kernel: KernelRef<PaAttnFwdParams>,
    pub params: PaAttnFwdParams,
    pub dims: LaunchDims,
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

/// Checks a forward call and prepares its launch (a kernel of the sm80 path).
pub(crate) fn prepare_forward(c: &ForwardCall<'_>) -> Result<ForwardLaunch> {
    let kernel = KernelRef::<PaAttnFwdParams>::new(c.kernel)?;
    let (params, dims) = forward_params(c)?;
    Ok(ForwardLaunch {
        kernel,
        params,
        dims,
    })
}

/// The checks every forward call passes, whatever its kernel's path, and the parameters and
/// launch dims they give (the sm90a path adds its tensor maps: prepare_sm90.rs).
pub(crate) fn forward_params(c: &ForwardCall<'_>) -> Result<(PaAttnFwdParams, LaunchDims)> {
    let shape = c.shape;
    shape.validate()?;
    let info = c.kernel;
    let tile = kernel_tile(info, c.dtype, shape)?;
    let mask = c.mask;
    check_plan(mask, shape, info, tile)?;
    check_scale(c.scale)?;
    let qkv = qkv_params(shape, &c.q, &c.k, &c.v, c.vis_end, c.scale)?;
    let o_stride = check_view("o", &c.o, shape, shape.q_heads, true)?;
    check_lse("lse ([rows, q_heads, n] f32)", c.lse_len, c.lse_addr, shape)?;
    let ctas = grid_ctas(
        "forward CTAs (rows * q_tiles * q_heads)",
        mask.rows() * mask.q_tiles(),
        shape.q_heads,
    )?;
    // LSE is indexed as ((row * q_heads + head) * n + i) in int64 by the kernel; the shape's
    // validation bounds it.

    let params = PaAttnFwdParams {
        qkv,
        q_major: c.q_major.params(mask.q_tiles()),
        o: pa_view(&c.o, o_stride),
        lse: c.lse_addr as usize as *mut f32,
    };
    let dims = LaunchDims::linear(ctas, info.threads, info.smem_bytes);
    Ok((params, dims))
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
            mask: plan
                .mask(crate::attention::configs::tile_shape(tile))
                .unwrap(),
            q_major: ListAddrs {
                offsets: 0x2000,
                runs: 0x3000,
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
        assert_eq!(p.q_major.runs as usize, 0x3000);

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
