//! Launch preparation of the log-prob gather (csrc/kernels/logprob_gather.cuh), shared by the GPU
//! executor ([`super::DeviceLogProbMap`]) and the emulator ([`super::EmuLogProbGather`]): the
//! checks, the [`LaunchDims`] and the parameter structs are computed here once; the executors
//! only fill in their pointers.

use core::ffi::c_void;

use cudarc::driver::DeviceRepr;

use super::logprob::LogProbMap;
use crate::error::{Error, Result};
use crate::ffi::params::{PaLogProbGatherParams, PaSegmentSumParams};
use crate::launch::LaunchDims;
use crate::registry::{self, KernelDtype, KernelInfo, KernelRef};

// SAFETY: plain C structs of integers and pointers, laid out as in csrc/pa_params.h (bindgen
// layout tests check it), passed to the kernels by value.
unsafe impl DeviceRepr for PaLogProbGatherParams {}
unsafe impl DeviceRepr for PaSegmentSumParams {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
    impl Sealed for f32 {}
}

/// A logit element type the gather kernel is instantiated for: bf16, f16 or f32.
pub trait GatherElement: crate::reference::Element + crate::emu::Element + sealed::Sealed {
    /// The registry's name for it (the gather instantiation's dtype).
    const DTYPE: KernelDtype;
    /// Index of the instantiation (for executors that cache one function per type).
    #[doc(hidden)]
    const INDEX: usize;
}

impl GatherElement for half::bf16 {
    const DTYPE: KernelDtype = KernelDtype::Bf16;
    const INDEX: usize = 0;
}
impl GatherElement for half::f16 {
    const DTYPE: KernelDtype = KernelDtype::F16;
    const INDEX: usize = 1;
}
impl GatherElement for f32 {
    const DTYPE: KernelDtype = KernelDtype::F32;
    const INDEX: usize = 2;
}

/// The gather kernel for logits of type `T` (registry family `logprob_gather`).
pub fn gather_kernel<T: GatherElement>() -> Result<KernelRef<PaLogProbGatherParams>> {
    let info = registry::family("logprob_gather")
        .find(|k| k.dtype == T::DTYPE)
        .ok_or_else(|| Error::InvalidArgument {
            what: "kernel",
            detail: format!(
                "no log-prob gather for {:?} logits in the registry",
                T::DTYPE
            ),
        })?;
    KernelRef::new(info)
}

/// The per-completion segment sum (fixed-order, no atomics: deterministic).
pub fn sum_kernel() -> Result<KernelRef<PaSegmentSumParams>> {
    KernelRef::unique()
}

/// How the logits are laid out: `[rows * n, row_stride]` elements, of which the first `vocab`
/// of each row are the vocabulary (`row_stride > vocab` for a padded vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogitsLayout {
    pub vocab: usize,
    pub row_stride: usize,
}

impl LogitsLayout {
    /// Rows of exactly `vocab` elements.
    pub fn dense(vocab: usize) -> Self {
        Self {
            vocab,
            row_stride: vocab,
        }
    }

    /// Rows of `row_stride` elements, the first `vocab` of them read.
    pub fn padded(vocab: usize, row_stride: usize) -> Self {
        Self { vocab, row_stride }
    }
}

/// What a launch needs to know about a map, computed once (O(entries)) so that a gather call
/// checks its arguments in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MapSummary {
    pub positions: usize,
    pub entries: i32,
    pub completions: i32,
    /// The largest target (None without entries).
    pub max_target: Option<u32>,
}

impl MapSummary {
    pub fn new(map: &LogProbMap) -> Result<Self> {
        let entries = int32("log-prob map entries", map.targets.len())?;
        let completions = int32("log-prob map completions", map.completions.len())?;
        Ok(Self {
            positions: map.positions,
            entries,
            completions,
            max_target: map.targets.iter().copied().max(),
        })
    }
}

fn int32(what: &'static str, value: usize) -> Result<i32> {
    i32::try_from(value).map_err(|_| Error::IndexOverflow {
        what,
        value: value as u128,
    })
}

/// The map's completion offsets as the int32 array the segment-sum kernel reads.
pub(crate) fn offsets_i32(map: &LogProbMap) -> Result<Vec<i32>> {
    map.offsets
        .iter()
        .map(|&o| int32("log-prob map offset", o))
        .collect()
}

/// One gather, checked and prepared: dims and parameter structs of both kernels for both
/// executors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogProbGatherPlan {
    vocab: i32,
    row_stride: i64,
    entries: i32,
    completions: i32,
}

impl LogProbGatherPlan {
    /// Checks a gather of `map` over `logits_len` logits laid out as `layout`. Errors:
    /// `InvalidArgument` for vocab 0 or `row_stride < vocab`, `LengthMismatch` when the logits
    /// are not `positions * row_stride` elements, `IndexOverflow` past the kernels' int32
    /// indices, and `TokenOutOfVocab` (as [`LogProbMap::gather`]) for a target not below vocab.
    pub fn new(map: &LogProbMap, logits_len: usize, layout: LogitsLayout) -> Result<Self> {
        Self::from_summary(map, &MapSummary::new(map)?, logits_len, layout)
    }

    /// As [`Self::new`] with the map's summary computed beforehand: O(1) unless a target is out
    /// of the vocabulary (then the host map is scanned to name it).
    pub(crate) fn from_summary(
        map: &LogProbMap,
        summary: &MapSummary,
        logits_len: usize,
        layout: LogitsLayout,
    ) -> Result<Self> {
        let LogitsLayout { vocab, row_stride } = layout;
        if vocab == 0 {
            return Err(Error::InvalidArgument {
                what: "vocab",
                detail: "0".into(),
            });
        }
        if row_stride < vocab {
            return Err(Error::InvalidArgument {
                what: "row_stride",
                detail: format!("{row_stride} is below the vocabulary size {vocab}"),
            });
        }
        let vocab_i32 = int32("vocab", vocab)?;
        let expected = summary
            .positions
            .checked_mul(row_stride)
            .filter(|&n| n <= i64::MAX as usize)
            .ok_or(Error::IndexOverflow {
                what: "logits length (positions * row_stride)",
                value: summary.positions as u128 * row_stride as u128,
            })?;
        if logits_len != expected {
            return Err(Error::LengthMismatch {
                what: "logits [rows * n, row_stride]",
                expected,
                got: logits_len,
            });
        }
        if summary.max_target.is_some_and(|t| t as usize >= vocab) {
            map.check_targets(vocab)?;
        }
        Ok(Self {
            vocab: vocab_i32,
            row_stride: row_stride as i64,
            entries: summary.entries,
            completions: summary.completions,
        })
    }

    /// Gathered log-probs (length of the per-token output).
    pub fn entries(&self) -> usize {
        self.entries as usize
    }

    /// Completions (length of the sums output).
    pub fn completions(&self) -> usize {
        self.completions as usize
    }

    /// Checks the output lengths: `entries` per-token values, `completions` sums.
    pub fn check_outputs(&self, per_token_len: usize, sums_len: usize) -> Result<()> {
        if per_token_len != self.entries() {
            return Err(Error::LengthMismatch {
                what: "per_token (one per gathered log-prob)",
                expected: self.entries(),
                got: per_token_len,
            });
        }
        if sums_len != self.completions() {
            return Err(Error::LengthMismatch {
                what: "sums (one per completion)",
                expected: self.completions(),
                got: sums_len,
            });
        }
        Ok(())
    }

    /// Dims of the gather: one CTA per entry, the kernel's block and shared memory (its
    /// registry entry). None without entries (nothing to launch).
    pub fn gather_dims(&self, kernel: &KernelInfo) -> Option<LaunchDims> {
        (self.entries > 0).then_some(LaunchDims::linear(
            self.entries as u32,
            kernel.threads,
            kernel.smem_bytes,
        ))
    }

    /// Dims of the segment sum: one warp per completion, as many warps per CTA as the kernel's
    /// block has. None without completions.
    pub fn sum_dims(&self, kernel: &KernelInfo) -> Option<LaunchDims> {
        let warps = kernel.threads / 32;
        (self.completions > 0).then_some(LaunchDims::linear(
            (self.completions as u32).div_ceil(warps),
            kernel.threads,
            0,
        ))
    }

    /// The gather's params: `logits` of the launched element type, the map's `logit_rows` and
    /// `targets`, and `per_token` (all device addresses on a GPU, host ones in the emulator).
    pub fn gather_params(
        &self,
        logits: *const c_void,
        logit_rows: *const i32,
        targets: *const u32,
        per_token: *mut f32,
    ) -> PaLogProbGatherParams {
        PaLogProbGatherParams {
            logits,
            logit_rows,
            targets,
            per_token,
            row_stride: self.row_stride,
            vocab: self.vocab,
            entries: self.entries,
        }
    }

    /// The segment sum's params: `per_token` as written by the gather, the map's int32
    /// `offsets` (`completions + 1`), and `sums`.
    pub fn sum_params(
        &self,
        per_token: *const f32,
        offsets: *const i32,
        sums: *mut f32,
    ) -> PaSegmentSumParams {
        PaSegmentSumParams {
            values: per_token,
            offsets,
            sums,
            segments: self.completions,
            _pad0: 0,
        }
    }
}
