//! The SwiGLU activation kernel (csrc/kernels/swiglu.cuh): `out = silu(gate) * up` over
//! `[tokens, ffn]`, fp32 inside, rounded once. Launch preparation ([`SwigluShape::prepare`]) is
//! shared by the device ([`Swiglu::run`]) and the emulator ([`swiglu_emulated`]).

use std::sync::Arc;

use cudarc::driver::{CudaStream, CudaView, CudaViewMut, DeviceRepr};

use super::{LayerDtype, RawBuf};
use crate::cuda::{launch, DeviceArgs, DeviceKernel, Gpu};
use crate::emu::{self, Options, Stats};
use crate::error::{Error, Result};
use crate::ffi::params::PaSwigluParams;
use crate::launch::LaunchDims;
use crate::registry::KernelRef;

// SAFETY: a plain C struct of pointers and integers laid out as in csrc/pa_params.h (bindgen
// layout tests check it), passed to the kernel by value.
unsafe impl DeviceRepr for PaSwigluParams {}

/// The registered SwiGLU kernel for `T`.
pub fn kernel<T: LayerDtype>() -> Result<KernelRef<PaSwigluParams>> {
    KernelRef::of_family("swiglu", T::DTYPE)
}

/// Most CTAs of one launch; the kernel's grid-stride loop covers the rest.
const MAX_CTAS: u64 = 65_535;

/// Rows and row strides (in elements) of the three `[tokens, ffn]` views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwigluShape {
    pub tokens: usize,
    pub ffn: usize,
    pub gate_stride: usize,
    pub up_stride: usize,
    pub out_stride: usize,
}

impl SwigluShape {
    /// Gate and up as the two halves of one fused `[tokens, 2 * ffn]` GEMM output (gate first),
    /// out dense `[tokens, ffn]`: pass the fused buffer as `gate` and the same buffer from
    /// element `ffn` on as `up`.
    pub fn fused(tokens: usize, ffn: usize) -> Self {
        Self {
            tokens,
            ffn,
            gate_stride: 2 * ffn,
            up_stride: 2 * ffn,
            out_stride: ffn,
        }
    }

    /// Checks the views and returns the launch: `None` for zero tokens (nothing to launch).
    ///
    /// Errors (`InvalidView` naming the view): `ffn` or a stride not a multiple of 8 (the kernel
    /// moves 16 bytes at a time), a stride below `ffn`, a pointer not 16-byte aligned, a buffer
    /// too short for its last row; `IndexOverflow` past the kernel's indices.
    pub fn prepare(
        &self,
        gate: RawBuf,
        up: RawBuf,
        out: RawBuf,
    ) -> Result<Option<(LaunchDims, PaSwigluParams)>> {
        let bad = |what: &'static str, detail: String| Error::InvalidView { what, detail };
        if self.ffn == 0 || self.ffn % 8 != 0 {
            return Err(bad(
                "swiglu",
                format!("ffn {} is not a positive multiple of 8", self.ffn),
            ));
        }
        for (what, buf, stride) in [
            ("swiglu gate", gate, self.gate_stride),
            ("swiglu up", up, self.up_stride),
            ("swiglu out", out, self.out_stride),
        ] {
            if stride % 8 != 0 || stride < self.ffn {
                return Err(bad(
                    what,
                    format!(
                        "row stride {stride} is below ffn {} or not a multiple of 8",
                        self.ffn
                    ),
                ));
            }
            if buf.addr % 16 != 0 {
                return Err(bad(
                    what,
                    format!("element 0 at {:#x} is not 16-byte aligned", buf.addr),
                ));
            }
            if self.tokens > 0 {
                let need = (self.tokens - 1)
                    .checked_mul(stride)
                    .and_then(|x| x.checked_add(self.ffn))
                    .ok_or(Error::IndexOverflow {
                        what,
                        value: self.tokens as u128 * stride as u128,
                    })?;
                if buf.len < need {
                    return Err(Error::LengthMismatch {
                        what,
                        expected: need,
                        got: buf.len,
                    });
                }
            }
        }
        if self.tokens == 0 {
            return Ok(None);
        }
        let vectors = (self.tokens as u128) * (self.ffn as u128 / 8);
        if vectors > i64::MAX as u128 / 2 {
            return Err(Error::IndexOverflow {
                what: "swiglu tokens * ffn",
                value: vectors * 8,
            });
        }
        let row_vectors = i32::try_from(self.ffn / 8).map_err(|_| Error::IndexOverflow {
            what: "swiglu ffn",
            value: self.ffn as u128,
        })?;
        let threads = crate::registry::family_threads("swiglu")?;
        let ctas = (vectors as u64).div_ceil(u64::from(threads)).min(MAX_CTAS) as u32;
        let dims = LaunchDims::linear(ctas, threads, 0);
        let params = PaSwigluParams {
            gate: gate.addr as usize as *const _,
            up: up.addr as usize as *const _,
            out: out.addr as usize as *mut _,
            gate_stride: self.gate_stride as i64,
            up_stride: self.up_stride as i64,
            out_stride: self.out_stride as i64,
            vectors: vectors as i64,
            row_vectors,
            _pad0: 0,
        };
        Ok(Some((dims, params)))
    }
}

/// The SwiGLU kernels of one device.
pub struct Swiglu {
    /// By [`LayerDtype::INDEX`].
    kernels: [DeviceKernel<PaSwigluParams>; 2],
}

impl Swiglu {
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Ok(Self {
            kernels: [
                gpu.load(kernel::<half::bf16>()?)?,
                gpu.load(kernel::<half::f16>()?)?,
            ],
        })
    }

    /// `out = silu(gate) * up` on `stream`: asynchronous, no allocation. Errors as
    /// [`SwigluShape::prepare`].
    pub fn run<T: LayerDtype>(
        &self,
        stream: &Arc<CudaStream>,
        shape: &SwigluShape,
        gate: &CudaView<'_, T>,
        up: &CudaView<'_, T>,
        out: &mut CudaViewMut<'_, T>,
    ) -> Result<()> {
        let mut args = DeviceArgs::new(stream);
        let g = args.read(gate)?;
        let u = args.read(up)?;
        let out_len = out.len();
        let o = args.write(out)?;
        let raw = |addr, len| RawBuf { addr, len };
        let Some((dims, params)) =
            shape.prepare(raw(g, gate.len()), raw(u, up.len()), raw(o, out_len))?
        else {
            return Ok(());
        };
        // SAFETY: prepare checked that every row of every view lies inside its buffer; `args`
        // keeps the buffers alive and ordered on `stream` until the launch is enqueued.
        unsafe { launch(&self.kernels[T::INDEX], stream, &dims, &params) }
    }
}

/// [`Swiglu::run`] on the CPU emulator (host slices; `out` may not alias the inputs here).
pub fn swiglu_emulated<T: LayerDtype>(
    shape: &SwigluShape,
    gate: &[T],
    up: &[T],
    out: &mut [T],
    options: impl Into<Options>,
) -> Result<Stats> {
    match shape.prepare(RawBuf::of(gate), RawBuf::of(up), RawBuf::of(out))? {
        // SAFETY: prepare checked every view against its slice; `out` is borrowed mutably for
        // the whole synchronous launch.
        Some((dims, params)) => unsafe { emu::launch(kernel::<T>()?, &dims, &params, options) },
        None => Ok(Stats::default()),
    }
}
