//! The backward's workspace: two fp32 arrays `[rows, q_heads, n_pad]`, `lse_log2` (LSE * log2 e,
//! +inf where a query sees no key and for the padding) and `delta` (D = rowsum(dO * O), 0 for the
//! padding), written by the preprocess kernel and read by the dK/dV and dQ kernels
//! (csrc/pa_params.h, `PaAttnBwdStats`). `n_pad` rounds n up to whole q tiles of every backward
//! kernel, so they copy whole tiles with 16-byte copies and no bounds checks.
//!
//! Sized from the shape alone; allocate it once ([`BackwardWorkspace::new`]) and reuse it for
//! every layer and step whose shape it [fits](BackwardWorkspace::fits): a backward call allocates
//! nothing.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use crate::cuda::cuda_err;
use crate::error::{Error, Result};
use crate::ffi::params::PA_BWD_PRE_TOKENS;
use crate::registry;
use crate::shape::AttnShape;

use super::configs::{BACKWARD_DKV_FAMILY, BACKWARD_DQ_FAMILY};

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Tokens every `n_pad` is a multiple of: the preprocess's token block and every registered
/// backward q tile (all powers of two today; the lcm keeps it right for any).
pub fn token_align() -> usize {
    registry::family(BACKWARD_DKV_FAMILY)
        .chain(registry::family(BACKWARD_DQ_FAMILY))
        .filter_map(|k| k.tile)
        .fold(PA_BWD_PRE_TOKENS as usize, |a, t| {
            let b = t.block_q as usize;
            a / gcd(a, b) * b
        })
}

/// Elements between consecutive (row, head) runs of the workspace arrays: n rounded up to
/// [`token_align`]. Errors when that overflows the kernels' int32 token index.
pub fn stats_stride(n: usize) -> Result<usize> {
    let align = token_align();
    let n_pad = n.div_ceil(align) as u128 * align as u128;
    if n_pad > i32::MAX as u128 {
        return Err(Error::IndexOverflow {
            what: "n rounded up to whole backward q tiles",
            value: n_pad,
        });
    }
    Ok(n_pad as usize)
}

/// fp32 elements of each of the two workspace arrays for `shape`.
pub fn workspace_len(shape: &AttnShape) -> Result<usize> {
    shape.validate()?;
    let len = shape.rows as u128 * shape.q_heads as u128 * stats_stride(shape.n)? as u128;
    usize::try_from(len).map_err(|_| Error::IndexOverflow {
        what: "backward workspace elements",
        value: len,
    })
}

/// The workspace of backward calls on a device: allocate once, reuse for every call whose shape
/// [fits](Self::fits).
pub struct BackwardWorkspace {
    pub(crate) lse_log2: CudaSlice<f32>,
    pub(crate) delta: CudaSlice<f32>,
}

impl BackwardWorkspace {
    /// A workspace for calls of `shape` (or any smaller one) on `stream`'s device.
    pub fn new(stream: &Arc<CudaStream>, shape: &AttnShape) -> Result<Self> {
        let len = workspace_len(shape)?;
        Ok(Self {
            lse_log2: stream
                .alloc_zeros::<f32>(len)
                .map_err(cuda_err("alloc backward workspace (lse_log2)"))?,
            delta: stream
                .alloc_zeros::<f32>(len)
                .map_err(cuda_err("alloc backward workspace (delta)"))?,
        })
    }

    /// fp32 elements of each of its two arrays.
    pub fn len(&self) -> usize {
        self.lse_log2.len().min(self.delta.len())
    }

    /// Whether it holds no element (never, for a workspace made by [`Self::new`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a call of `shape` can use it.
    pub fn fits(&self, shape: &AttnShape) -> bool {
        workspace_len(shape).is_ok_and(|len| len <= self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_pad_covers_every_backward_q_tile_and_the_preprocess_block() {
        let align = token_align();
        assert_eq!(align % PA_BWD_PRE_TOKENS as usize, 0);
        for k in registry::family(BACKWARD_DKV_FAMILY).chain(registry::family(BACKWARD_DQ_FAMILY)) {
            assert_eq!(align % k.tile.unwrap().block_q as usize, 0, "{}", k.name);
        }
        for n in [1, 63, 64, 65, 200, 4096] {
            let p = stats_stride(n).unwrap();
            assert!(p >= n && p % align == 0 && p - n < align, "{n} -> {p}");
        }
        assert!(stats_stride(i32::MAX as usize).is_err());
    }

    #[test]
    fn workspace_len_is_rows_heads_n_pad() {
        let sh = AttnShape {
            rows: 3,
            n: 70,
            q_heads: 4,
            kv_heads: 2,
            head_dim: 64,
        };
        assert_eq!(
            workspace_len(&sh).unwrap(),
            3 * 4 * stats_stride(70).unwrap()
        );
        assert!(workspace_len(&AttnShape { q_heads: 3, ..sh }).is_err());
    }
}
