//! The rotary-embedding kernel (csrc/kernels/rotary.cuh): in place on the Q and K heads of each
//! token, angles from a [`RotaryTable`] indexed by the layout's position ids (so a completion
//! in a shared row turns exactly as in its unshared sequence). [`RotaryDirection::Inverse`]
//! undoes it and is also its backward. Launch preparation ([`RotaryShape::prepare`]) is shared
//! by the device ([`Rotary::run`]) and the emulator ([`rotary_emulated`]).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, CudaViewMut, DeviceRepr};

use super::{LayerDtype, RawBuf};
use crate::cuda::{cuda_err, launch, upload_for_kernel, DeviceArgs, DeviceKernel, Gpu};
use crate::emu::{self, Options, Stats};
use crate::error::{Error, Result};
use crate::ffi::params::PaRotaryParams;
use crate::launch::LaunchDims;
use crate::registry::KernelRef;
use crate::rotary::{RotaryDirection, RotaryTable};

// SAFETY: a plain C struct of pointers and integers laid out as in csrc/pa_params.h (bindgen
// layout tests check it), passed to the kernel by value.
unsafe impl DeviceRepr for PaRotaryParams {}

/// The registered rotary kernel for `T` (one CTA per token).
pub fn kernel<T: LayerDtype>() -> Result<KernelRef<PaRotaryParams>> {
    KernelRef::of_family("rotary", T::DTYPE)
}

/// Which heads of which tokens: token `t` starts at element `t * token_stride`, heads
/// `0..heads` follow each other `head_dim` apart. For a fused QKV buffer `[tokens, (q + 2 kv)
/// heads, d]`: `heads = q + kv` (Q then K), `token_stride = (q + 2 kv) * d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotaryShape {
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub token_stride: usize,
}

/// The table's device (or host) arrays as the launch sees them.
#[derive(Debug, Clone, Copy)]
pub struct TableAddrs {
    pub cos: u64,
    pub sin: u64,
    pub head_dim: usize,
    pub max_positions: usize,
}

impl TableAddrs {
    /// Host addresses of `table` (the emulator's).
    pub fn host(table: &RotaryTable) -> Self {
        Self {
            cos: table.cos().as_ptr() as usize as u64,
            sin: table.sin().as_ptr() as usize as u64,
            head_dim: table.head_dim(),
            max_positions: table.max_positions(),
        }
    }
}

impl RotaryShape {
    /// Checks the view, the positions' count and the table, and returns the launch (`None` for
    /// zero tokens). The positions' values are checked against the table by the caller
    /// ([`RotaryTable::check_positions`]: [`Rotary::upload_positions`] and [`rotary_emulated`]
    /// do).
    pub fn prepare(
        &self,
        x: RawBuf,
        positions: RawBuf,
        table: TableAddrs,
        direction: RotaryDirection,
    ) -> Result<Option<(LaunchDims, PaRotaryParams)>> {
        let bad = |detail: String| Error::InvalidView {
            what: "rotary x",
            detail,
        };
        if self.head_dim != table.head_dim {
            return Err(Error::InvalidArgument {
                what: "rotary table",
                detail: format!("head dim {} for heads of {}", table.head_dim, self.head_dim),
            });
        }
        if self.head_dim == 0 || self.head_dim % 2 != 0 {
            return Err(Error::UnsupportedHeadDim {
                head_dim: self.head_dim,
            });
        }
        let row = self
            .heads
            .checked_mul(self.head_dim)
            .ok_or(Error::IndexOverflow {
                what: "rotary heads * head_dim",
                value: self.heads as u128 * self.head_dim as u128,
            })?;
        if self.token_stride < row {
            return Err(bad(format!(
                "token stride {} is below heads * head_dim = {row}",
                self.token_stride
            )));
        }
        if positions.len != self.tokens {
            return Err(Error::LengthMismatch {
                what: "rotary positions (one per token)",
                expected: self.tokens,
                got: positions.len,
            });
        }
        if self.tokens == 0 {
            return Ok(None);
        }
        let need = (self.tokens - 1)
            .checked_mul(self.token_stride)
            .and_then(|x| x.checked_add(row))
            .ok_or(Error::IndexOverflow {
                what: "rotary x",
                value: self.tokens as u128 * self.token_stride as u128,
            })?;
        if x.len < need {
            return Err(Error::LengthMismatch {
                what: "rotary x (last token's heads)",
                expected: need,
                got: x.len,
            });
        }
        if x.addr % 2 != 0 {
            return Err(bad(format!(
                "element 0 at {:#x} is not 2-byte aligned",
                x.addr
            )));
        }
        let i32_of = |what: &'static str, v: usize| {
            i32::try_from(v).map_err(|_| Error::IndexOverflow {
                what,
                value: v as u128,
            })
        };
        let params = PaRotaryParams {
            x: x.addr as usize as *mut _,
            positions: positions.addr as usize as *const i32,
            cos: table.cos as usize as *const f32,
            sin: table.sin as usize as *const f32,
            token_stride: i64::try_from(self.token_stride).map_err(|_| Error::IndexOverflow {
                what: "rotary token stride",
                value: self.token_stride as u128,
            })?,
            tokens: i32_of("rotary tokens", self.tokens)?,
            heads: i32_of("rotary heads", self.heads)?,
            head_dim: i32_of("rotary head dim", self.head_dim)?,
            max_positions: i32_of("rotary table positions", table.max_positions)?,
            inverse: i32::from(direction == RotaryDirection::Inverse),
            _pad0: 0,
        };
        let dims = LaunchDims::linear(
            self.tokens as u32,
            crate::registry::family_threads("rotary")?,
            0,
        );
        Ok(Some((dims, params)))
    }
}

/// Position ids on a device, checked against the table they index.
pub struct DevicePositions {
    ids: CudaSlice<i32>,
    len: usize,
}

/// The rotary kernels of one device and a table uploaded once.
pub struct Rotary {
    /// By [`LayerDtype::INDEX`].
    kernels: [DeviceKernel<PaRotaryParams>; 2],
    cos: CudaSlice<f32>,
    sin: CudaSlice<f32>,
    table: RotaryTable,
}

impl Rotary {
    pub fn new(gpu: &Gpu, stream: &Arc<CudaStream>, table: RotaryTable) -> Result<Self> {
        Ok(Self {
            kernels: [
                gpu.load(kernel::<half::bf16>()?)?,
                gpu.load(kernel::<half::f16>()?)?,
            ],
            cos: stream
                .clone_htod(table.cos())
                .map_err(cuda_err("cuMemcpyHtoD (rotary cos)"))?,
            sin: stream
                .clone_htod(table.sin())
                .map_err(cuda_err("cuMemcpyHtoD (rotary sin)"))?,
            table,
        })
    }

    pub fn table(&self) -> &RotaryTable {
        &self.table
    }

    /// Checks every id is inside the table, then uploads them (once per batch).
    pub fn upload_positions(
        &self,
        stream: &Arc<CudaStream>,
        positions: &[i32],
    ) -> Result<DevicePositions> {
        self.table.check_positions(positions)?;
        Ok(DevicePositions {
            ids: upload_for_kernel(stream, positions, "cuMemcpyHtoD (positions)")?,
            len: positions.len(),
        })
    }

    /// Rotates `x` in place on `stream`: asynchronous, no allocation. Errors as
    /// [`RotaryShape::prepare`].
    pub fn run<T: LayerDtype>(
        &self,
        stream: &Arc<CudaStream>,
        shape: &RotaryShape,
        x: &mut CudaViewMut<'_, T>,
        positions: &DevicePositions,
        direction: RotaryDirection,
    ) -> Result<()> {
        let x_len = x.len();
        let mut args = DeviceArgs::new(stream);
        let xp = args.write(x)?;
        let pp = args.read(&positions.ids)?;
        let cp = args.read(&self.cos)?;
        let sp = args.read(&self.sin)?;
        let table = TableAddrs {
            cos: cp,
            sin: sp,
            head_dim: self.table.head_dim(),
            max_positions: self.table.max_positions(),
        };
        let Some((dims, params)) = shape.prepare(
            RawBuf {
                addr: xp,
                len: x_len,
            },
            RawBuf {
                addr: pp,
                len: positions.len,
            },
            table,
            direction,
        )?
        else {
            return Ok(());
        };
        // SAFETY: prepare checked the view against its buffer and the position count; the ids
        // were checked against this table when uploaded; `args` keeps every buffer alive and
        // ordered on `stream` until the launch is enqueued.
        unsafe { launch(&self.kernels[T::INDEX], stream, &dims, &params) }
    }
}

/// [`Rotary::run`] on the CPU emulator, with host slices and a host table.
pub fn rotary_emulated<T: LayerDtype>(
    shape: &RotaryShape,
    x: &mut [T],
    positions: &[i32],
    table: &RotaryTable,
    direction: RotaryDirection,
    options: impl Into<Options>,
) -> Result<Stats> {
    table.check_positions(positions)?;
    match shape.prepare(
        RawBuf::of(x),
        RawBuf::of(positions),
        TableAddrs::host(table),
        direction,
    )? {
        // SAFETY: prepare checked the view and the positions' count, check_positions their
        // values; `x` is borrowed mutably for the whole synchronous launch.
        Some((dims, params)) => unsafe { emu::launch(kernel::<T>()?, &dims, &params, options) },
        None => Ok(Stats::default()),
    }
}
