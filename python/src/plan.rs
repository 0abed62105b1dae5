//! A batch's plan (`vis_end` and its block lists), built on the host once per batch and uploaded
//! once per CUDA device; and the CUDA contexts the calls use.

use std::sync::{Arc, Mutex};

use prefix_attn::cudarc::driver::CudaContext;
use prefix_attn::{Error, VisEnd};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::OrPy;

/// The primary context of each CUDA device (the one PyTorch uses), opened once per process.
static CONTEXTS: Mutex<Vec<(usize, Arc<CudaContext>)>> = Mutex::new(Vec::new());

/// The primary CUDA context of device `ordinal` (cudarc retains it; kept for the process).
pub fn context(ordinal: usize) -> PyResult<Arc<CudaContext>> {
    let mut all = CONTEXTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, c)) = all.iter().find(|(o, _)| *o == ordinal) {
        return Ok(c.clone());
    }
    let ctx = CudaContext::new(ordinal).map_err(Error::from).py()?;
    all.push((ordinal, ctx.clone()));
    Ok(ctx)
}

/// `vis_end` of a batch (`rows` rows of `n` tokens) and its block lists at every tile the
/// default kernels use. Cheap to share: every layer's forward and backward reads the same one.
#[pyclass(frozen, weakref, module = "prefix_attn._native")]
pub struct Plan {
    pub plan: prefix_attn::Plan,
}

#[pymethods]
impl Plan {
    /// Builds the plan from `rows * n` int32 read at host address `addr` (copied: the memory is
    /// not used after the call). The caller (prefix_attn.Plan) passes a live contiguous int32 CPU
    /// tensor's `data_ptr()`. An invalid row (`vis_end[j]` outside `[j, n]`) is a ValueError
    /// naming the row and index.
    #[staticmethod]
    fn from_host(py: Python<'_>, addr: usize, rows: usize, n: usize) -> PyResult<Self> {
        let len = rows
            .checked_mul(n)
            .ok_or_else(|| PyValueError::new_err("rows * n overflows"))?;
        if len > 0 && addr % std::mem::align_of::<i32>() != 0 {
            return Err(PyValueError::new_err(
                "vis_end: address not aligned to int32",
            ));
        }
        if n == 0 || rows == 0 {
            let e = if rows == 0 {
                Error::NoRows { what: "vis_end" }
            } else {
                Error::EmptyRow { row: 0 }
            };
            return Err(crate::errors::to_py(e));
        }
        // SAFETY: the package passes a live, contiguous int32 tensor of rows * n elements, not
        // written during this call (it holds a reference to it).
        let data = unsafe { std::slice::from_raw_parts(addr as *const i32, len) }.to_vec();
        let plan = py.detach(move || -> prefix_attn::Result<prefix_attn::Plan> {
            prefix_attn::Plan::new(VisEnd::new(n, data)?)
        });
        Ok(Self { plan: plan.py()? })
    }

    #[getter]
    fn rows(&self) -> usize {
        self.plan.rows()
    }

    #[getter]
    fn n(&self) -> usize {
        self.plan.n()
    }

    /// The tile shapes `(block_q, block_k)` the plan has block lists for.
    fn tiles(&self) -> Vec<(usize, usize)> {
        self.plan
            .tiles()
            .iter()
            .map(|t| (t.block_q(), t.block_k()))
            .collect()
    }

    /// Per tile shape: `(block_q, block_k, counts)`, counts the int32 bytes `[rows, q_tiles]` of
    /// how many k tiles each q tile's list holds (the kernels walk exactly those): what an error
    /// bound needs to know of the tiling.
    fn q_list_lengths<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Vec<(usize, usize, Bound<'py, PyBytes>)>> {
        let mut out = Vec::new();
        for t in self.plan.tiles() {
            let m = self.plan.mask(t).py()?;
            let q_tiles = self.plan.n().div_ceil(t.block_q());
            let mut bytes = Vec::with_capacity(self.plan.rows() * q_tiles * 4);
            for r in 0..self.plan.rows() {
                for qt in 0..q_tiles {
                    let c = m.q_list(r, qt).count() as i32;
                    bytes.extend_from_slice(&c.to_le_bytes());
                }
            }
            out.push((t.block_q(), t.block_k(), PyBytes::new(py, &bytes)));
        }
        Ok(out)
    }

    /// Uploads the block lists to CUDA device `device` now (once; later calls on that device
    /// only read them), so the first attention call does not pay for it.
    fn upload(&self, py: Python<'_>, device: usize) -> PyResult<()> {
        let ctx = context(device)?;
        let plan = self.plan.clone();
        py.detach(move || plan.upload_to(&ctx)).py()
    }

    /// Whether the lists are on some CUDA device.
    fn is_on_device(&self) -> bool {
        self.plan.is_on_device()
    }

    /// The plan's `vis_end`, int32 bytes `[rows, n]`.
    fn vis_end_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let v = self.plan.vis_end().as_slice();
        let mut bytes = Vec::with_capacity(v.len() * 4);
        for x in v {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        PyBytes::new(py, &bytes)
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.plan)
    }
}
