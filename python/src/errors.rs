//! The crate's typed errors as Python exceptions, with the crate's own text.

use prefix_attn::Error;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyErr;

/// `ValueError` for what the caller gave (shapes, strides, alignment, masks, samples, scale),
/// `RuntimeError` for what the machine or the build lacks (no kernels, no device, a CUDA error)
/// and for a kernel the emulator caught breaking a rule. The message is the crate's `Display`.
pub fn to_py(e: Error) -> PyErr {
    let text = e.to_string();
    match e {
        Error::KernelsNotBuilt { .. }
        | Error::NoDevice { .. }
        | Error::Cuda { .. }
        | Error::LibraryNotFound { .. }
        | Error::Emulator { .. } => PyRuntimeError::new_err(text),
        _ => PyValueError::new_err(text),
    }
}

/// `?` on a crate result inside a `PyResult` function.
pub trait OrPy<T> {
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> OrPy<T> for prefix_attn::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
