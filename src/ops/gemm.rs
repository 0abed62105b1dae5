//! Row-major bf16 GEMMs through cuBLAS (cudarc's `cublas`, loaded at run time like the driver):
//! `C [m, n] = A [m, k] B [k, n]`, fp32 accumulation. The crate builds and runs without CUDA;
//! [`Gemm::new`] looks for libcublas first, so a missing library is
//! [`Error::LibraryNotFound`], never a panic.

use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm as _, GemmConfig};
use cudarc::driver::{CudaStream, CudaView, CudaViewMut};
use half::bf16;

use crate::cpu::MatShape;
use crate::error::{Error, Result};

/// A cuBLAS handle bound to one stream.
pub struct Gemm {
    blas: CudaBlas,
}

impl Gemm {
    /// Loads libcublas (once per process) and creates a handle on `stream`.
    pub fn new(stream: Arc<CudaStream>) -> Result<Self> {
        // cudarc panics when a cuBLAS call cannot find the library: ask first.
        if !crate::cuda::library_present(crate::cuda::CudaLib::Cublas) {
            return Err(Error::LibraryNotFound {
                library: "libcublas",
                detail: "no libcublas.so on the loader path (it comes with the CUDA toolkit and \
                         with PyTorch's nvidia-cublas wheel: add its lib/ folder to LD_LIBRARY_PATH)"
                    .into(),
            });
        }
        let blas = CudaBlas::new(stream).map_err(|e| Error::Cuda {
            call: "cublasCreate",
            detail: e.to_string(),
        })?;
        Ok(Self { blas })
    }

    /// `c = a b`, all row-major bf16, asynchronous on the handle's stream. Errors: lengths that
    /// do not match `shape` (`LengthMismatch`), sizes past cuBLAS's int32 (`IndexOverflow`),
    /// cuBLAS errors.
    pub fn matmul(
        &self,
        a: &CudaView<'_, bf16>,
        b: &CudaView<'_, bf16>,
        c: &mut CudaViewMut<'_, bf16>,
        shape: MatShape,
    ) -> Result<()> {
        shape.check("gemm operands (A [m, k], B [k, n])", a.len(), b.len())?;
        if c.len() != shape.m * shape.n {
            return Err(Error::LengthMismatch {
                what: "gemm output C [m, n]",
                expected: shape.m * shape.n,
                got: c.len(),
            });
        }
        let int = |what: &'static str, v: usize| {
            i32::try_from(v).map_err(|_| Error::IndexOverflow {
                what,
                value: v as u128,
            })
        };
        let (m, k, n) = (
            int("gemm m", shape.m)?,
            int("gemm k", shape.k)?,
            int("gemm n", shape.n)?,
        );
        if m == 0 || n == 0 {
            return Ok(());
        }
        // Row-major C = A B is column-major C^T = B^T A^T: the row-major buffers already are
        // those transposes, so cuBLAS multiplies B (n x k, ld n) by A (k x m, ld k).
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: n,
            n: m,
            k,
            alpha: bf16::ONE,
            lda: n,
            ldb: k,
            beta: bf16::ZERO,
            ldc: n,
        };
        // SAFETY: the lengths were checked against the shape, so cuBLAS reads and writes inside
        // the three views.
        unsafe { self.blas.gemm(cfg, b, a, c) }.map_err(|e| Error::Cuda {
            call: "cublasGemmEx (bf16)",
            detail: e.to_string(),
        })
    }
}
