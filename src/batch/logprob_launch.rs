//! Launch preparation of the log-prob gather (csrc/kernels/logprob_gather.cu), shared by the GPU
//! executor ([`super::DeviceLogProbMap`]) and the emulator ([`super::EmuLogProbGather`]): the
//! checks, the [`LaunchDims`] and the parameter structs are computed here once; the executors
//! only fill in their pointers.

use core::ffi::c_void;

use cudarc::driver::DeviceRepr;

use super::logprob::LogProbMap;
use crate::error::{Error, Result};
use crate::ffi::params::{PaLogProbGatherParams, PaSegmentSumParams};
use crate::launch::{EmuEntry, Kernel, LaunchDims};

// SAFETY: plain C structs of integers and pointers, laid out as in csrc/pa_params.h (bindgen
// layout tests check it), passed to the kernels by value.
unsafe impl DeviceRepr for PaLogProbGatherParams {}
unsafe impl DeviceRepr for PaSegmentSumParams {}

macro_rules! gather_kernel {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $entry:path) => {
        $(#[$doc])*
        pub struct $ty;
        impl Kernel for $ty {
            type Params = PaLogProbGatherParams;
            const NAME: &'static str = $name;
            const EMU: EmuEntry<Self::Params> = $entry;
        }
    };
}

gather_kernel!(
    /// `pa_logprob_gather_bf16`: per-token log-probs from bf16 logits.
    LogProbGatherBf16,
    "pa_logprob_gather_bf16",
    crate::ffi::emu::pa_logprob_gather_bf16_emu
);
gather_kernel!(
    /// `pa_logprob_gather_f16`: per-token log-probs from f16 logits.
    LogProbGatherF16,
    "pa_logprob_gather_f16",
    crate::ffi::emu::pa_logprob_gather_f16_emu
);
gather_kernel!(
    /// `pa_logprob_gather_f32`: per-token log-probs from f32 logits.
    LogProbGatherF32,
    "pa_logprob_gather_f32",
    crate::ffi::emu::pa_logprob_gather_f32_emu
);

/// `pa_segment_sum_f32`: per-completion sums of the per-token log-probs (fixed-order, no
/// atomics: deterministic).
pub struct SegmentSumF32;

impl Kernel for SegmentSumF32 {
    type Params = PaSegmentSumParams;
    const NAME: &'static str = "pa_segment_sum_f32";
    const EMU: EmuEntry<Self::Params> = crate::ffi::emu::pa_segment_sum_f32_emu;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
    impl Sealed for f32 {}
}

/// A logit element type the gather kernel is instantiated for: bf16, f16 or f32.
pub trait GatherElement: crate::reference::Element + crate::emu::Element + sealed::Sealed {
    /// The kernel instantiation for this type.
    type Kernel: Kernel<Params = PaLogProbGatherParams>;
    /// Index of the instantiation (for executors that cache one function per type).
    #[doc(hidden)]
    const INDEX: usize;
}

impl GatherElement for half::bf16 {
    type Kernel = LogProbGatherBf16;
    const INDEX: usize = 0;
}
impl GatherElement for half::f16 {
    type Kernel = LogProbGatherF16;
    const INDEX: usize = 1;
}
impl GatherElement for f32 {
    type Kernel = LogProbGatherF32;
    const INDEX: usize = 2;
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
    /// Threads per gather CTA (one CTA per map entry); csrc/kernels/logprob_gather.cu's
    /// `kGatherThreads`.
    pub const THREADS: u32 = 256;
    /// Warps per segment-sum CTA (one warp per completion); the kernel's `kSumWarps`.
    pub const SUM_WARPS: u32 = 4;

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

    /// Dims of the gather: one CTA per entry. None without entries (nothing to launch).
    pub fn gather_dims(&self) -> Option<LaunchDims> {
        (self.entries > 0).then_some(LaunchDims {
            grid: [self.entries as u32, 1, 1],
            block: [Self::THREADS, 1, 1],
            // One (max, sum) pair of f32 per warp for the cross-warp merge.
            smem_bytes: Self::THREADS / 32 * 8,
        })
    }

    /// Dims of the segment sum: one warp per completion. None without completions.
    pub fn sum_dims(&self) -> Option<LaunchDims> {
        (self.completions > 0).then_some(LaunchDims {
            grid: [(self.completions as u32).div_ceil(Self::SUM_WARPS), 1, 1],
            block: [Self::SUM_WARPS * 32, 1, 1],
            smem_bytes: 0,
        })
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
