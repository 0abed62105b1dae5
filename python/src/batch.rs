//! Samples to rows (the crate's `Batch::shared` / `Batch::paired`) and the log-prob map back, as
//! little-endian bytes the Python half turns into tensors with `torch.frombuffer`.

use prefix_attn::{BatchOptions, Sample, TokenTree};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::OrPy;
use crate::plan::Plan;

/// A built batch: `[rows, n]` token ids, positions, `vis_end`, per-token ids, and the map from
/// logits to per-completion log-probs.
#[pyclass(frozen, module = "prefix_attn._native")]
pub struct Batch {
    batch: prefix_attn::Batch,
}

fn i64_bytes<'py, T: Copy + Into<i64>>(py: Python<'py>, v: &[T]) -> Bound<'py, PyBytes> {
    let mut b = Vec::with_capacity(v.len() * 8);
    for &x in v {
        b.extend_from_slice(&x.into().to_le_bytes());
    }
    PyBytes::new(py, &b)
}

fn i32_bytes<'py>(py: Python<'py>, v: &[i32]) -> Bound<'py, PyBytes> {
    let mut b = Vec::with_capacity(v.len() * 4);
    for &x in v {
        b.extend_from_slice(&x.to_le_bytes());
    }
    PyBytes::new(py, &b)
}

/// One sample: `(prompt, [completion, ...])`, or an object with a `nodes` attribute holding
/// `[(tokens, parent, scored), ...]` in insertion order (node 0 the root, parent -1).
fn sample(item: &Bound<'_, PyAny>, index: usize) -> PyResult<Sample> {
    if let Ok((prompt, completions)) = item.extract::<(Vec<u32>, Vec<Vec<u32>>)>() {
        return Ok(Sample::completions(prompt, completions));
    }
    let nodes = item
        .getattr("nodes")
        .and_then(|n| n.extract::<Vec<(Vec<u32>, i64, bool)>>())
        .map_err(|_| {
            PyValueError::new_err(format!(
                "sample {index}: expected (prompt_ids, [completion_ids, ...]) with token ids as \
                 non-negative ints below 2^32, or a prefix_attn.TokenTree"
            ))
        })?;
    let mut it = nodes.into_iter();
    let Some((root, _, _)) = it.next() else {
        return Err(PyValueError::new_err(format!(
            "sample {index}: a tree needs a root"
        )));
    };
    let mut tree = TokenTree::new(root);
    for (tokens, parent, scored) in it {
        let parent = usize::try_from(parent).map_err(|_| {
            PyValueError::new_err(format!("sample {index}: parent {parent} is not a node"))
        })?;
        tree.add_child(parent, tokens, scored).py()?;
    }
    Ok(Sample::Tree(tree))
}

#[pymethods]
impl Batch {
    /// `kind` "shared" (each prompt once, its completions after it) or "paired" (each completion
    /// with its own copy of the prompt). Errors name the sample (ValueError).
    #[staticmethod]
    #[pyo3(signature = (kind, samples, max_len, round_to=None, vocab=None, pad_token=0, truncate=false))]
    #[allow(clippy::too_many_arguments)]
    fn build(
        py: Python<'_>,
        kind: &str,
        samples: Vec<Bound<'_, PyAny>>,
        max_len: usize,
        round_to: Option<usize>,
        vocab: Option<u32>,
        pad_token: u32,
        truncate: bool,
    ) -> PyResult<Self> {
        let samples = samples
            .iter()
            .enumerate()
            .map(|(i, s)| sample(s, i))
            .collect::<PyResult<Vec<_>>>()?;
        let opts = BatchOptions {
            vocab,
            truncate,
            round_to,
            pad_token,
            ..BatchOptions::new(max_len)
        };
        let shared = match kind {
            "shared" => true,
            "paired" => false,
            other => {
                return Err(PyValueError::new_err(format!(
                    "kind {other:?}: \"shared\" or \"paired\""
                )))
            }
        };
        let batch = py.detach(move || {
            if shared {
                prefix_attn::Batch::shared(&samples, &opts)
            } else {
                prefix_attn::Batch::paired(&samples, &opts)
            }
        });
        Ok(Self { batch: batch.py()? })
    }

    #[getter]
    fn rows(&self) -> usize {
        self.batch.rows()
    }

    #[getter]
    fn n(&self) -> usize {
        self.batch.n()
    }

    /// Real tokens / (rows * n).
    #[getter]
    fn efficiency(&self) -> f64 {
        self.batch.efficiency()
    }

    #[getter]
    fn real_tokens(&self) -> usize {
        self.batch.real_tokens()
    }

    /// int64 bytes `[rows, n]`.
    fn token_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        i64_bytes(py, self.batch.token_ids())
    }

    /// int64 bytes `[rows, n]`.
    fn positions<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        i64_bytes(py, self.batch.positions())
    }

    /// int32 bytes `[rows, n]`.
    fn vis_end<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        i32_bytes(py, self.batch.vis_end().as_slice())
    }

    /// int32 bytes `[rows, n]`: sample index per token, -1 at padding.
    fn sample_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        i32_bytes(py, self.batch.sample_ids())
    }

    /// int32 bytes `[rows, n]`: the completion a token belongs to alone, -1 if shared or padding.
    fn completion_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        i32_bytes(py, self.batch.completion_ids())
    }

    /// The batch's plan (block lists built here, on the host).
    fn plan(&self, py: Python<'_>) -> PyResult<Plan> {
        let ve = self.batch.vis_end().clone();
        let plan = py.detach(move || prefix_attn::Plan::new(ve));
        Ok(Plan { plan: plan.py()? })
    }

    /// The log-prob map: `(completions, offsets, logit_rows, targets)`, completions a list of
    /// `(sample, completion)` sorted, offsets int64 bytes `[completions + 1]`, logit rows (flat
    /// `row * n + t`) and targets int64 bytes `[entries]`.
    #[allow(clippy::type_complexity)]
    fn log_prob_map<'py>(
        &self,
        py: Python<'py>,
    ) -> (
        Vec<(usize, usize)>,
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
    ) {
        let m = self.batch.log_prob_map();
        let completions = m
            .completions()
            .iter()
            .map(|c| (c.sample, c.completion))
            .collect();
        let offsets: Vec<i64> = m.offsets().iter().map(|&o| o as i64).collect();
        (
            completions,
            i64_bytes(py, &offsets),
            i64_bytes(py, m.logit_rows()),
            i64_bytes(py, m.targets()),
        )
    }

    /// Per-completion sums of log-probs from logits `[rows, n, vocab]` f32 at host address
    /// `addr` (the crate's CPU gather, in f64): the reference the package's tests hold
    /// `completion_logps` to. A NaN or +inf logit read (or -inf at a target) is a ValueError.
    fn gather_sums(&self, addr: usize, len: usize, vocab: usize) -> PyResult<Vec<f64>> {
        if addr % std::mem::align_of::<f32>() != 0 {
            return Err(PyValueError::new_err("logits: address not aligned to f32"));
        }
        // SAFETY: the package passes a live contiguous f32 CPU tensor of `len` elements, held
        // for the call.
        let logits = unsafe { std::slice::from_raw_parts(addr as *const f32, len) };
        let m = self.batch.log_prob_map();
        Ok(m.gather(logits, vocab).py()?.sums)
    }

    /// What truncation cut: `(sample, completion, kept, cut)` per shortened completion.
    fn truncations(&self) -> Vec<(usize, usize, usize, usize)> {
        self.batch
            .truncations()
            .iter()
            .map(|t| (t.sample, t.completion, t.kept, t.cut))
            .collect()
    }
}
