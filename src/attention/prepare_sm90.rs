//! Launch preparation of the sm90a forward kernels: every check and parameter of the sm80
//! preparation ([`super::prepare::forward_params`]), plus the tensor maps through which TMA loads
//! Q, K and V. A map holds its view's address, so it is encoded per call by the executor's
//! encoder ([`TensorMapDesc::encode_device`] or [`TensorMapDesc::encode_emulator`]): host work
//! only, no device allocation or synchronisation.

use crate::error::{Error, Result};
use crate::ffi::params::PaAttnFwdSm90Params;
use crate::launch::LaunchDims;
use crate::registry::{KernelDtype, KernelInfo, KernelRef};
use crate::shape::AttnShape;
use crate::sm90::{PaTensorMap, TensorMapDesc, TmaDtype, TmaSwizzle};

use super::prepare::{forward_params, ForwardCall};
use super::view::RawView;

/// A prepared launch of an sm90a forward kernel.
#[derive(Debug, Clone, Copy)]
pub struct ForwardSm90Launch {
    pub kernel: KernelRef<PaAttnFwdSm90Params>,
    pub params: PaAttnFwdSm90Params,
    pub dims: LaunchDims,
}

/// Elements per TMA box along the head dim: 128 bytes, the SWIZZLE_128B span the kernel's
/// shared-memory layout and wgmma descriptors assume (csrc/attn/sm90_kit.cuh).
const BOX_COLS: u32 = 64;

/// TMA takes byte strides below 2^40 (cuTensorMapEncodeTiled).
const MAX_STRIDE_BYTES: u64 = 1 << 40;

/// Checks a forward call for an sm90a kernel and prepares its launch; `encode` turns each view's
/// tensor-map description into the encoding its executor reads.
pub(crate) fn prepare_forward_sm90(
    c: &ForwardCall<'_>,
    encode: impl Fn(&TensorMapDesc) -> Result<PaTensorMap>,
) -> Result<ForwardSm90Launch> {
    let kernel = KernelRef::<PaAttnFwdSm90Params>::new(c.kernel)?;
    let (base, dims) = forward_params(c)?;
    let tile = c.kernel.tile.ok_or_else(|| Error::InvalidArgument {
        what: "kernel",
        detail: format!("{} has no tile configuration", c.kernel.name),
    })?;
    let dtype = tma_dtype(c.kernel, c.dtype)?;
    let shape = c.shape;
    let map = |what: &'static str, view: &RawView, heads: usize, box_rows: u32| {
        encoded_view_map(what, view, shape, heads, box_rows, dtype, &encode)
    };
    let mut params = PaAttnFwdSm90Params {
        base,
        ..Default::default()
    };
    params.q_map = map("q", &c.q, shape.q_heads, tile.block_q)?;
    params.k_map = map("k", &c.k, shape.kv_heads, tile.block_k)?;
    params.v_map = map("v", &c.v, shape.kv_heads, tile.block_k)?;
    Ok(ForwardSm90Launch {
        kernel,
        params,
        dims,
    })
}

/// The TMA element type of an sm90a kernel's 16-bit dtype.
pub(crate) fn tma_dtype(kernel: &KernelInfo, dtype: KernelDtype) -> Result<TmaDtype> {
    match dtype {
        KernelDtype::Bf16 => Ok(TmaDtype::Bf16),
        KernelDtype::F16 => Ok(TmaDtype::F16),
        other => Err(Error::InvalidArgument {
            what: "kernel",
            detail: format!("{} takes {other:?}, not a 16-bit float", kernel.name),
        }),
    }
}

/// [`view_map`] encoded by `encode`; a map the encoder refuses is the view's typed error.
pub(crate) fn encoded_view_map(
    what: &'static str,
    view: &RawView,
    shape: &AttnShape,
    heads: usize,
    box_rows: u32,
    dtype: TmaDtype,
    encode: impl Fn(&TensorMapDesc) -> Result<PaTensorMap>,
) -> Result<PaTensorMap> {
    let desc = view_map(what, view, shape, heads, box_rows, dtype)?;
    encode(&desc).map_err(|e| match e {
        Error::InvalidTensorMap { field, detail } => Error::InvalidView {
            what,
            detail: format!("TMA (the sm90a path) cannot load it: tensor map {field}: {detail}"),
        },
        other => other,
    })
}

/// The tensor map of one `[rows, n, heads, head_dim]` view (already checked by `check_view`):
/// rank 4, dimensions (head_dim, heads, n, rows) innermost first, byte strides of heads, tokens
/// and rows, boxes of 64 elements x 1 head x `box_rows` tokens x 1 row, SWIZZLE_128B. Tokens past
/// n read as zeros.
///
/// Beyond the sm80 path's checks, TMA needs byte strides below 2^40, and this path refuses a zero
/// stride of a dimension with more than one element (a broadcast view, which the sm80 path reads):
/// `cuTensorMapEncodeTiled` documents strides as multiples of 16 without saying whether 0 is one
/// it accepts, and no device was at hand to find out. A dimension of one element is never stepped
/// along, so its stride is replaced by the dense one.
pub(crate) fn view_map(
    what: &'static str,
    view: &RawView,
    shape: &AttnShape,
    heads: usize,
    box_rows: u32,
    dtype: TmaDtype,
) -> Result<TensorMapDesc> {
    let elem = u64::from(dtype.bytes());
    let s = view.strides;
    let d = shape.head_dim as u64;
    let mut span = d * elem; // bytes the inner dimensions cover in a dense layout
    let mut strides = Vec::with_capacity(3);
    for (name, stride, extent) in [
        ("head", s.head, heads),
        ("token", s.token, shape.n),
        ("row", s.row, shape.rows),
    ] {
        let bytes = stride as u64 * elem;
        let bad = |detail: String| Error::InvalidView { what, detail };
        if extent > 1 && bytes == 0 {
            return Err(bad(format!(
                "{name} stride 0 (every {name} reads the same memory): the sm90a path's TMA \
                 loads are not known to take a zero stride; force the sm80 path \
                 (KernelChoice) for this view"
            )));
        }
        if bytes >= MAX_STRIDE_BYTES {
            return Err(bad(format!(
                "{name} stride of {bytes} bytes: TMA (the sm90a path) takes strides below 2^40 \
                 bytes"
            )));
        }
        strides.push(if extent > 1 { bytes } else { span });
        span *= extent.max(1) as u64;
    }
    Ok(TensorMapDesc {
        dtype,
        global_address: view.addr,
        dims: vec![d, heads as u64, shape.n as u64, shape.rows as u64],
        strides,
        box_dims: vec![BOX_COLS, 1, box_rows, 1],
        swizzle: TmaSwizzle::B128,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::configs::{select_forward, tile_shape};
    use crate::attention::prepare::ListAddrs;
    use crate::attention::Strides;
    use crate::mask::VisEnd;
    use crate::plan::Plan;
    use crate::registry::{Arch, TileConfig};

    fn shape() -> AttnShape {
        AttnShape {
            rows: 2,
            n: 130,
            q_heads: 8,
            kv_heads: 2,
            head_dim: 128,
        }
    }

    #[test]
    fn maps_describe_the_views_and_the_tiles() {
        let sh = shape();
        let view = RawView {
            len: sh.q_len(),
            addr: 0x10000,
            strides: Strides::dense(sh.n, 8, 128),
        };
        let m = view_map("q", &view, &sh, 8, 128, TmaDtype::Bf16).unwrap();
        assert_eq!(m.dims, vec![128, 8, 130, 2]);
        assert_eq!(m.strides, vec![256, 8 * 256, 130 * 8 * 256]);
        assert_eq!(m.box_dims, vec![64, 1, 128, 1]);
        assert_eq!(m.box_bytes().unwrap(), 128 * 128);
        // One row and one head: their strides are never used and become the dense ones.
        let one = AttnShape {
            rows: 1,
            q_heads: 1,
            kv_heads: 1,
            ..sh
        };
        let odd = RawView {
            strides: Strides {
                row: 0,
                token: 64 * 3,
                head: 0,
            },
            ..view
        };
        let m = view_map("k", &odd, &one, 1, 128, TmaDtype::F16).unwrap();
        assert_eq!(m.strides, vec![256, 384, 130 * 256]);
        m.validate().unwrap();
    }

    #[test]
    fn views_tma_cannot_load_are_typed_errors() {
        let sh = shape();
        let base = RawView {
            len: usize::MAX,
            addr: 0x10000,
            strides: Strides::dense(sh.n, 2, 128),
        };
        let broadcast = RawView {
            strides: Strides {
                head: 0,
                ..base.strides
            },
            ..base
        };
        let err = view_map("k", &broadcast, &sh, 2, 128, TmaDtype::Bf16).unwrap_err();
        assert!(
            matches!(err, Error::InvalidView { what: "k", ref detail } if detail.contains("head stride 0")),
            "{err}"
        );
        let huge = RawView {
            strides: Strides {
                row: 1 << 40,
                ..base.strides
            },
            ..base
        };
        let err = view_map("v", &huge, &sh, 2, 128, TmaDtype::Bf16).unwrap_err();
        assert!(
            matches!(err, Error::InvalidView { what: "v", ref detail } if detail.contains("2^40")),
            "{err}"
        );
    }

    #[test]
    fn an_sm90a_launch_has_the_sm80_params_and_three_maps() {
        let sh = shape();
        let plan =
            Plan::new(VisEnd::from_rows(&[vec![130; 130], vec![130; 130]]).unwrap()).unwrap();
        let tile = TileConfig::new(128, 128, 12, 2);
        let kernel =
            select_forward(Arch::Sm90a, KernelDtype::Bf16, 128, Some(tile), |_| true).unwrap();
        let view = |heads: usize, addr: u64| RawView {
            len: sh.rows * sh.n * heads * 128,
            addr,
            strides: Strides::dense(sh.n, heads, 128),
        };
        let call = ForwardCall {
            kernel,
            mask: plan.mask(tile_shape(tile)).unwrap(),
            q_major: ListAddrs {
                offsets: 0x2000,
                runs: 0x3000,
                order: 0x4000,
            },
            vis_end: 0x1000,
            shape: &sh,
            dtype: KernelDtype::Bf16,
            q: view(8, 0x10000),
            k: view(2, 0x20000),
            v: view(2, 0x30000),
            o: view(8, 0x40000),
            lse_len: sh.lse_len(),
            lse_addr: 0x50000,
            scale: 0.5,
        };
        let launch = prepare_forward_sm90(&call, TensorMapDesc::encode_emulator).unwrap();
        assert_eq!(launch.kernel.name(), kernel.name);
        // 2 q tiles of 128 per row, 8 heads; 3 warpgroups.
        assert_eq!(launch.dims.grid, [2 * 2 * 8, 1, 1]);
        assert_eq!(launch.dims.block, [384, 1, 1]);
        assert_eq!(launch.params.base.qkv.kv_group, 4);
        assert_eq!(launch.params.base.q_major.tiles, 2);
        // The sm80 kernel of the same call is refused (another parameter struct).
        let sm80 = select_forward(
            Arch::Sm80,
            KernelDtype::Bf16,
            128,
            Some(TileConfig::new(128, 128, 8, 2)),
            |_| true,
        )
        .unwrap();
        assert!(prepare_forward_sm90(
            &ForwardCall {
                kernel: sm80,
                ..call
            },
            TensorMapDesc::encode_emulator
        )
        .is_err());
    }
}
