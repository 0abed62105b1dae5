//! Launch preparation of the backward: the one function that checks a backward call and turns it
//! into its three launches (preprocess, dK/dV, dQ), in the order they must run on one stream. The
//! GPU path ([`super::Backward`]) and the emulator path ([`super::backward_emulated`]) both call
//! it, with device or host addresses and their executor's tensor-map encoder (the sm90a dK/dV and
//! dQ kernels load Q, dO, K and V by TMA).

use crate::error::{Error, Result};
use crate::ffi::params::{
    PaAttnBwdDkvParams, PaAttnBwdDkvSm90Params, PaAttnBwdDqParams, PaAttnBwdDqSm90Params,
    PaAttnBwdPreParams, PaAttnBwdStats, PA_BWD_PRE_TOKENS,
};
use crate::launch::LaunchDims;
use crate::mask::BlockMask;
use crate::registry::{Arch, KernelDtype, KernelInfo, KernelRef, TileConfig};
use crate::shape::AttnShape;
use crate::sm90::{PaTensorMap, TensorMapDesc};

use super::checks::{
    check_kernel_dtype, check_lse, check_plan, check_scale, grid_ctas, kernel_tile, pa_view,
    qkv_params, ListAddrs,
};
use super::configs::BackwardKernels;
use super::overlap::{check_disjoint, Footprint};
use super::prepare_sm90::{encoded_view_map, tma_dtype};
use super::view::{check_view, RawView};
use super::workspace::{stats_stride, workspace_len};

/// One prepared launch: the kernel, its parameter struct and its dims.
#[derive(Debug, Clone, Copy)]
pub struct PreparedLaunch<P> {
    pub kernel: KernelRef<P>,
    pub params: P,
    pub dims: LaunchDims,
}

/// The dQ launch of the call's path: the sm80 kernel's, or the sm90a kernel's (the same
/// parameters plus the tensor maps of Q, dO, K and V).
// One value per call, built and launched at once: boxing the larger variant would allocate on
// every call, which a backward call promises not to do.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub enum DqLaunch {
    Sm80(PreparedLaunch<PaAttnBwdDqParams>),
    Sm90a(PreparedLaunch<PaAttnBwdDqSm90Params>),
}

/// The dK/dV launch of the call's path: the sm80 kernel's, or the sm90a kernel's (the same
/// parameters plus the tensor maps of Q, dO, K and V).
// As DqLaunch: one value per call, never boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub enum DkvLaunch {
    Sm80(PreparedLaunch<PaAttnBwdDkvParams>),
    Sm90a(PreparedLaunch<PaAttnBwdDkvSm90Params>),
}

/// The three launches of a backward call, to run in this order on one stream.
#[derive(Debug, Clone, Copy)]
pub struct BackwardLaunch {
    pub pre: PreparedLaunch<PaAttnBwdPreParams>,
    pub dkv: DkvLaunch,
    pub dq: DqLaunch,
}

/// Everything one backward call is given, as lengths and addresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BackwardCall<'a> {
    pub(crate) kernels: BackwardKernels,
    /// The plan's block lists at the dK/dV kernel's tile with their k-major addresses, at the dQ
    /// kernel's tile with their q-major addresses, and vis_end's address.
    pub(crate) dkv_mask: &'a BlockMask,
    pub(crate) k_major: ListAddrs,
    pub(crate) dq_mask: &'a BlockMask,
    pub(crate) q_major: ListAddrs,
    pub(crate) vis_end: u64,
    pub(crate) shape: &'a AttnShape,
    pub(crate) dtype: KernelDtype,
    pub(crate) q: RawView,
    pub(crate) k: RawView,
    pub(crate) v: RawView,
    pub(crate) o: RawView,
    pub(crate) d_o: RawView,
    pub(crate) dq: RawView,
    pub(crate) dk: RawView,
    pub(crate) dv: RawView,
    pub(crate) lse_len: usize,
    pub(crate) lse_addr: u64,
    /// fp32 elements of each workspace array, and their addresses.
    pub(crate) ws_len: usize,
    pub(crate) ws_lse_log2: u64,
    pub(crate) ws_delta: u64,
    pub(crate) scale: f32,
}

/// Checks a backward call and prepares its three launches; `encode` turns a view's tensor-map
/// description into the encoding its executor reads (used for the sm90a dK/dV and dQ kernels).
pub(crate) fn prepare_backward(
    c: &BackwardCall<'_>,
    encode: impl Fn(&TensorMapDesc) -> Result<PaTensorMap>,
) -> Result<BackwardLaunch> {
    let shape = c.shape;
    shape.validate()?;
    let ks = c.kernels;
    let pre = KernelRef::<PaAttnBwdPreParams>::new(ks.pre)?;
    check_kernel_dtype(ks.pre, c.dtype, shape)?;
    let dkv_tile = kernel_tile(ks.dkv, c.dtype, shape)?;
    let dq_tile = kernel_tile(ks.dq, c.dtype, shape)?;
    check_plan(c.dkv_mask, shape, ks.dkv, dkv_tile)?;
    check_plan(c.dq_mask, shape, ks.dq, dq_tile)?;
    check_scale(c.scale)?;

    let qkv = qkv_params(shape, &c.q, &c.k, &c.v, c.vis_end, c.scale)?;
    let (qh, kvh) = (shape.q_heads, shape.kv_heads);
    let o_stride = check_view("o", &c.o, shape, qh, false)?;
    let d_o_stride = check_view("d_o", &c.d_o, shape, qh, false)?;
    let dq_stride = check_view("dq", &c.dq, shape, qh, true)?;
    let dk_stride = check_view("dk", &c.dk, shape, kvh, true)?;
    let dv_stride = check_view("dv", &c.dv, shape, kvh, true)?;
    let fp = |name, v: &RawView, heads| Footprint::of(name, v, shape, heads);
    check_disjoint(
        &[
            fp("dq", &c.dq, qh),
            fp("dk", &c.dk, kvh),
            fp("dv", &c.dv, kvh),
        ],
        &[
            fp("q", &c.q, qh),
            fp("k", &c.k, kvh),
            fp("v", &c.v, kvh),
            fp("o", &c.o, qh),
            fp("d_o", &c.d_o, qh),
        ],
    )?;
    check_lse("lse ([rows, q_heads, n] f32)", c.lse_len, c.lse_addr, shape)?;

    let n_pad = stats_stride(shape.n)?;
    let ws_needed = workspace_len(shape)?;
    if c.ws_len < ws_needed {
        return Err(Error::LengthMismatch {
            what: "backward workspace (fp32 elements per array, [rows, q_heads, n_pad])",
            expected: ws_needed,
            got: c.ws_len,
        });
    }
    for (what, addr) in [
        ("workspace lse_log2", c.ws_lse_log2),
        ("workspace delta", c.ws_delta),
    ] {
        if addr % 16 != 0 {
            return Err(Error::InvalidView {
                what,
                detail: format!("address {addr:#x} is not 16-byte aligned"),
            });
        }
    }
    for (info, tile, mask) in [(ks.dkv, dkv_tile, c.dkv_mask), (ks.dq, dq_tile, c.dq_mask)] {
        // n_pad covers every registered backward q tile; a kernel outside the registry's
        // families (or a changed alignment rule) must not read past the workspace.
        if mask.q_tiles() * tile.block_q as usize > n_pad {
            return Err(Error::InvalidArgument {
                what: "kernel",
                detail: format!(
                    "{} reads q tiles past the workspace's {n_pad} tokens",
                    info.name
                ),
            });
        }
    }
    let stats = PaAttnBwdStats {
        lse_log2: c.ws_lse_log2 as usize as *const f32,
        delta: c.ws_delta as usize as *const f32,
        n_pad: n_pad as i32,
        _pad0: 0,
    };

    let pre_ctas = grid_ctas(
        "backward preprocess CTAs (rows * q_heads * n_pad / tokens per CTA)",
        shape.rows * qh,
        n_pad / PA_BWD_PRE_TOKENS as usize,
    )?;
    let dkv_ctas = grid_ctas(
        "dK/dV CTAs (rows * k_tiles * kv_heads)",
        c.dkv_mask.rows() * c.dkv_mask.k_tiles(),
        kvh,
    )?;
    let dq_ctas = grid_ctas(
        "dQ CTAs (rows * q_tiles * q_heads)",
        c.dq_mask.rows() * c.dq_mask.q_tiles(),
        qh,
    )?;

    let dq_params = PaAttnBwdDqParams {
        qkv,
        q_major: c.q_major.params(c.dq_mask.q_tiles()),
        d_o: pa_view(&c.d_o, d_o_stride),
        dq: pa_view(&c.dq, dq_stride),
        stats,
    };
    // Boxes of block_q tokens for Q and dO, block_k for K and V (prepare_sm90::view_map), at the
    // sm90a kernel's own tile.
    let maps = |info: &KernelInfo, tile: TileConfig| -> Result<[PaTensorMap; 4]> {
        let dtype = tma_dtype(info, c.dtype)?;
        let map = |what: &'static str, view: &RawView, heads: usize, box_rows: u32| {
            encoded_view_map(what, view, shape, heads, box_rows, dtype, &encode)
        };
        Ok([
            map("q", &c.q, qh, tile.block_q)?,
            map("d_o", &c.d_o, qh, tile.block_q)?,
            map("k", &c.k, kvh, tile.block_k)?,
            map("v", &c.v, kvh, tile.block_k)?,
        ])
    };
    let dkv_params = PaAttnBwdDkvParams {
        qkv,
        k_major: c.k_major.params(c.dkv_mask.k_tiles()),
        d_o: pa_view(&c.d_o, d_o_stride),
        dk: pa_view(&c.dk, dk_stride),
        dv: pa_view(&c.dv, dv_stride),
        stats,
    };
    let dkv_dims = LaunchDims::linear(dkv_ctas, ks.dkv.threads, ks.dkv.smem_bytes);
    let dkv = match ks.dkv.arch {
        Arch::Sm80 => DkvLaunch::Sm80(PreparedLaunch {
            kernel: KernelRef::new(ks.dkv)?,
            params: dkv_params,
            dims: dkv_dims,
        }),
        Arch::Sm90a => {
            let [q_map, d_o_map, k_map, v_map] = maps(ks.dkv, dkv_tile)?;
            DkvLaunch::Sm90a(PreparedLaunch {
                kernel: KernelRef::new(ks.dkv)?,
                params: PaAttnBwdDkvSm90Params {
                    base: dkv_params,
                    q_map,
                    d_o_map,
                    k_map,
                    v_map,
                    _pad0: [0; 5],
                },
                dims: dkv_dims,
            })
        }
    };

    let dq_dims = LaunchDims::linear(dq_ctas, ks.dq.threads, ks.dq.smem_bytes);
    let dq = match ks.dq.arch {
        Arch::Sm80 => DqLaunch::Sm80(PreparedLaunch {
            kernel: KernelRef::new(ks.dq)?,
            params: dq_params,
            dims: dq_dims,
        }),
        Arch::Sm90a => {
            let [q_map, d_o_map, k_map, v_map] = maps(ks.dq, dq_tile)?;
            DqLaunch::Sm90a(PreparedLaunch {
                kernel: KernelRef::new(ks.dq)?,
                params: PaAttnBwdDqSm90Params {
                    base: dq_params,
                    q_map,
                    d_o_map,
                    k_map,
                    v_map,
                    _pad0: 0,
                },
                dims: dq_dims,
            })
        }
    };

    Ok(BackwardLaunch {
        pre: PreparedLaunch {
            kernel: pre,
            params: PaAttnBwdPreParams {
                o: pa_view(&c.o, o_stride),
                d_o: pa_view(&c.d_o, d_o_stride),
                lse: c.lse_addr as usize as *const f32,
                lse_log2: c.ws_lse_log2 as usize as *mut f32,
                delta: c.ws_delta as usize as *mut f32,
                n: shape.n as i32,
                n_pad: n_pad as i32,
                q_heads: qh as i32,
                _pad0: 0,
            },
            dims: LaunchDims::linear(pre_ctas, ks.pre.threads, ks.pre.smem_bytes),
        },
        dkv,
        dq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::configs::{select_backward, tile_shape, BackwardChoice};
    use crate::attention::Strides;
    use crate::mask::VisEnd;
    use crate::plan::Plan;
    use crate::registry::TileConfig;

    #[test]
    fn dims_and_params_follow_the_kernels_the_plan_and_the_workspace() {
        let n = 130; // 3 q tiles of 64, 2 k tiles of 128
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
        let choice = BackwardChoice {
            arch: Some(Arch::Sm80),
            dkv_tile: Some(TileConfig::new(64, 128, 8, 2)),
            dq_tile: Some(TileConfig::new(64, 64, 4, 2)),
        };
        let kernels =
            select_backward(Arch::Sm80, KernelDtype::F16, 128, &choice, |_| true).unwrap();
        let mask =
            |k: &crate::registry::KernelInfo| plan.mask(tile_shape(k.tile.unwrap())).unwrap();
        let lists = ListAddrs {
            offsets: 0x2000,
            runs: 0x3000,
            order: 0x4000,
        };
        let ws_len = workspace_len(&shape).unwrap();
        let call = BackwardCall {
            kernels,
            dkv_mask: mask(kernels.dkv),
            k_major: lists,
            dq_mask: mask(kernels.dq),
            q_major: lists,
            vis_end: 0x1000,
            shape: &shape,
            dtype: KernelDtype::F16,
            q: view(8, 0x10_0000),
            k: view(2, 0x20_0000),
            v: view(2, 0x30_0000),
            o: view(8, 0x40_0000),
            d_o: view(8, 0x50_0000),
            dq: view(8, 0x60_0000),
            dk: view(2, 0x70_0000),
            dv: view(2, 0x80_0000),
            lse_len: shape.lse_len(),
            lse_addr: 0x90_0000,
            ws_len,
            ws_lse_log2: 0xa0_0000,
            ws_delta: 0xb0_0000,
            scale: 0.5,
        };
        let l = prepare_backward(&call, TensorMapDesc::encode_emulator).unwrap();
        let DqLaunch::Sm80(dq) = l.dq else {
            panic!("the sm80 choice prepares the sm80 dQ kernel")
        };
        let DkvLaunch::Sm80(dkv) = l.dkv else {
            panic!("the sm80 choice prepares the sm80 dK/dV kernel")
        };
        let n_pad = stats_stride(n).unwrap();
        assert_eq!(n_pad % 64, 0);
        assert_eq!(l.pre.dims.grid, [(2 * 8 * n_pad / 64) as u32, 1, 1]);
        assert_eq!(dkv.dims.grid, [2 * 2 * 2, 1, 1]); // rows * k tiles * kv heads
        assert_eq!(dkv.dims.block, [256, 1, 1]);
        assert_eq!(dq.dims.grid, [2 * 3 * 8, 1, 1]); // rows * q tiles * q heads
        assert_eq!(dq.dims.smem_bytes, kernels.dq.smem_bytes);
        assert_eq!((dkv.params.k_major.tiles, dq.params.q_major.tiles), (2, 3));
        assert_eq!(dkv.params.stats.n_pad as usize, n_pad);
        assert_eq!(dq.params.stats.delta as usize, 0xb0_0000);
        assert_eq!((l.pre.params.n, l.pre.params.q_heads), (130, 8));
        assert_eq!(dkv.params.qkv.kv_group, 4);
        assert_eq!(dq.params.dq.stride.token, 8 * 128);

        // The sm90a choice: its dK/dV and dQ kernels with the same parameters plus four tensor
        // maps each, over the plan's 64 x 128 (dK/dV) and 128 x 128 (dQ) lists.
        let sm90 = select_backward(
            Arch::Sm90a,
            KernelDtype::F16,
            128,
            &BackwardChoice {
                arch: Some(Arch::Sm90a),
                ..Default::default()
            },
            |_| true,
        )
        .unwrap();
        assert_eq!(sm90.dkv.arch, Arch::Sm90a);
        let l90 = prepare_backward(
            &BackwardCall {
                kernels: sm90,
                dkv_mask: mask(sm90.dkv),
                dq_mask: mask(sm90.dq),
                ..call
            },
            TensorMapDesc::encode_emulator,
        )
        .unwrap();
        let DqLaunch::Sm90a(dq90) = l90.dq else {
            panic!("the sm90a choice prepares the sm90a dQ kernel")
        };
        assert_eq!(dq90.kernel.name(), sm90.dq.name);
        assert_eq!(dq90.dims.grid, [2 * 2 * 8, 1, 1]); // rows * q tiles of 128 * q heads
        assert_eq!(dq90.dims.block, [384, 1, 1]);
        assert_eq!(dq90.params.base.q_major.tiles, 2);
        assert_eq!(dq90.params.base.stats.n_pad as usize, n_pad);
        let DkvLaunch::Sm90a(dkv90) = l90.dkv else {
            panic!("the sm90a choice prepares the sm90a dK/dV kernel")
        };
        assert_eq!(dkv90.kernel.name(), sm90.dkv.name);
        assert_eq!(dkv90.dims.grid, [2 * 2 * 2, 1, 1]); // rows * k tiles of 128 * kv heads
        assert_eq!(dkv90.dims.block, [384, 1, 1]);
        assert_eq!(dkv90.dims.smem_bytes, sm90.dkv.smem_bytes);
        assert_eq!(dkv90.params.base.k_major.tiles, 2);
        assert_eq!(dkv90.params.base.stats.n_pad as usize, n_pad);
        assert_eq!(dkv90.params.base.dk.stride.token, 2 * 128);
        // A workspace one element short, a misaligned one, overlapping outputs: typed errors.
        let short = BackwardCall {
            ws_len: ws_len - 1,
            ..call
        };
        assert!(matches!(
            prepare_backward(&short, TensorMapDesc::encode_emulator),
            Err(Error::LengthMismatch { .. })
        ));
        let misaligned = BackwardCall {
            ws_delta: 0xb0_0004,
            ..call
        };
        assert!(matches!(
            prepare_backward(&misaligned, TensorMapDesc::encode_emulator),
            Err(Error::InvalidView {
                what: "workspace delta",
                ..
            })
        ));
        let overlap = BackwardCall {
            dv: view(2, 0x70_0000 + 64 * 2),
            ..call
        };
        assert!(matches!(
            prepare_backward(&overlap, TensorMapDesc::encode_emulator),
            Err(Error::InvalidView { what: "dk", .. })
        ));
        let on_q = BackwardCall {
            dq: view(8, 0x10_0000),
            ..call
        };
        assert!(matches!(
            prepare_backward(&on_q, TensorMapDesc::encode_emulator),
            Err(Error::InvalidView { what: "dq", .. })
        ));
    }
}
