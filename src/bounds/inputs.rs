//! What a bound is computed from: the call's inputs, as the reference takes them, and the
//! description of the forward kernel that ran.

use crate::attention::configs::{emulated_forward, tile_shape, FORWARD_FAMILY};
use crate::attention::KernelChoice;
use crate::error::{Error, Result};
use crate::mask::{TileShape, VisEnd};
use crate::reference::Element;
use crate::registry::KernelInfo;
use crate::scale::Scale;
use crate::shape::AttnShape;

use super::figures::{Arith, Dtype};

/// The inputs of one attention call, dense, as [`crate::reference::forward`] takes them: `q`
/// `[rows, n, q_heads, d]`, `k` and `v` `[rows, n, kv_heads, d]`, in any [`Element`] type whose
/// values are exactly the kernel's (the kernel's own bf16/f16 buffers, or f32/f64 copies of them).
///
/// `scale` is the f32 softmax scale the kernel was given: the bounds and the reference use
/// exactly that value (widened to f64), since the kernel computes with it and not with an f64
/// scale it was rounded from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a, T> {
    pub shape: AttnShape,
    pub vis_end: &'a VisEnd,
    pub q: &'a [T],
    pub k: &'a [T],
    pub v: &'a [T],
    pub scale: Scale,
}

impl<T: Element> Inputs<'_, T> {
    /// The reference's checks (shape, `vis_end` of the same rows and length, slice lengths, scale
    /// finite and positive), then what the bounds assume beyond them: a head dim of whole 16-wide
    /// mma steps, and every value finite and exactly a `dtype` value (what the kernel reads).
    pub(crate) fn validate(&self, dtype: Dtype) -> Result<()> {
        self.validate_call()?;
        for (what, x) in [("q", self.q), ("k", self.k), ("v", self.v)] {
            check_tensor(what, x, x.len(), dtype)?;
        }
        Ok(())
    }

    /// [`Self::validate`] without a dtype: every value finite.
    pub(crate) fn validate_finite(&self) -> Result<()> {
        self.validate_call()?;
        for (what, x) in [("q", self.q), ("k", self.k), ("v", self.v)] {
            if let Some(i) = x.iter().position(|e| !e.to_f64().is_finite()) {
                return Err(Error::InvalidArgument {
                    what,
                    detail: format!("element {i} = {} is not finite", x[i].to_f64()),
                });
            }
        }
        Ok(())
    }

    fn validate_call(&self) -> Result<()> {
        let sh = &self.shape;
        sh.validate()?;
        if sh.head_dim % 16 != 0 {
            return Err(Error::UnsupportedHeadDim {
                head_dim: sh.head_dim,
            });
        }
        if self.vis_end.n() != sh.n {
            return Err(Error::LengthMismatch {
                what: "vis_end row length (shape.n)",
                expected: sh.n,
                got: self.vis_end.n(),
            });
        }
        if self.vis_end.rows() != sh.rows {
            return Err(Error::LengthMismatch {
                what: "vis_end rows (shape.rows)",
                expected: sh.rows,
                got: self.vis_end.rows(),
            });
        }
        let scale = self.scale.as_f64();
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::InvalidArgument {
                what: "scale",
                detail: format!("{scale} is not a finite positive number"),
            });
        }
        for (what, x, len) in [
            ("q", self.q, sh.q_len()),
            ("k", self.k, sh.kv_len()),
            ("v", self.v, sh.kv_len()),
        ] {
            if x.len() != len {
                return Err(Error::LengthMismatch {
                    what,
                    expected: len,
                    got: x.len(),
                });
            }
        }
        Ok(())
    }
}

/// `x` has `len` elements, each finite and exactly a value of `dtype`.
pub(crate) fn check_tensor<T: Element>(
    what: &'static str,
    x: &[T],
    len: usize,
    dtype: Dtype,
) -> Result<()> {
    if x.len() != len {
        return Err(Error::LengthMismatch {
            what,
            expected: len,
            got: x.len(),
        });
    }
    if let Some((i, v)) = dtype.first_unrepresentable(x) {
        return Err(Error::InvalidArgument {
            what,
            detail: format!(
                "element {i} = {v} is not a finite {dtype} value: the kernel reads {dtype} \
                 values, and the bound is for the reference on exactly those"
            ),
        });
    }
    Ok(())
}

/// How the forward ran: its element type, the rounding model of its tensor-core products, and
/// the tile of the block lists it walked (its k tile width and how many k tiles each q tile
/// visits enter the bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardRun {
    pub dtype: Dtype,
    pub arith: Arith,
    pub tile: TileShape,
}

impl ForwardRun {
    /// The kernel [`crate::attention::forward_emulated_with`] runs for `choice` (the emulator
    /// runs the choice's path, sm80 when it names none, and the path's first preference when it
    /// names no tile), on the emulator.
    pub fn emulated(choice: &KernelChoice, dtype: Dtype, head_dim: usize) -> Result<ForwardRun> {
        let kernel = emulated_forward(choice, dtype.kernel_dtype(), head_dim)?;
        Ok(ForwardRun {
            arith: Arith::Emulator,
            ..ForwardRun::device(kernel)?
        })
    }

    /// A forward kernel that ran on a device, as [`crate::attention::Forward::kernel_for`]
    /// reports it: its dtype and tile, under the device's rounding latitude.
    pub fn device(kernel: &KernelInfo) -> Result<ForwardRun> {
        let tile = match (kernel.family, kernel.tile) {
            (FORWARD_FAMILY, Some(t)) => tile_shape(t),
            _ => {
                return Err(Error::InvalidArgument {
                    what: "kernel",
                    detail: format!(
                        "{} is not a forward attention kernel with a tile configuration",
                        kernel.name
                    ),
                })
            }
        };
        Ok(ForwardRun {
            dtype: Dtype::of_kernel(kernel.dtype)?,
            arith: Arith::Device,
            tile,
        })
    }
}
