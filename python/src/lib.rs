//! `prefix_attn._native`: the thin native half of the `prefix_attn` Python package.
//!
//! It holds plans and batches (built by the prefix-attn crate) and calls the crate's raw entry
//! with integers: addresses, element counts, element strides, a CUDA stream handle and a device
//! index (-1: the CPU emulator). It never links torch: the Python half (`prefix_attn/_ops.py`)
//! allocates every buffer with torch's allocator and passes its address here, and keeps the
//! tensors alive for the call. Bad input becomes a Python exception carrying the crate's typed
//! error text (`ValueError` for bad arguments, `RuntimeError` for the device, the build or the
//! emulator), never a crash.
//!
//! These functions are private to the package: an address that is not a live buffer of the
//! stated length is undefined behaviour (the raw entry's safety contract), which the Python half
//! rules out by construction.

mod attention;
mod batch;
mod errors;
mod plan;

use pyo3::prelude::*;

#[pymodule]
mod _native {
    #[pymodule_export]
    use crate::attention::{backward, forward, workspace_len};
    #[pymodule_export]
    use crate::batch::Batch;
    #[pymodule_export]
    use crate::plan::Plan;

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("KERNELS_BUILT", prefix_attn::cuda::kernels_built())?;
        Ok(())
    }
}
