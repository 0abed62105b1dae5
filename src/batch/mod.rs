//! The batch builder for trainers: samples of token ids (a prompt with k completions, or a
//! branching tree) to rows a model runs on, and back from the model's logits to per-completion
//! log-probs.
//!
//! - [`Batch::shared`]: each prompt once, its completions after it (trees in DFS preorder),
//!   several samples per row (first-fit-decreasing, deterministic), with token and position ids,
//!   `vis_end`, per-token sample / completion / node ids and packing efficiency.
//! - [`Batch::paired`]: the same samples with every completion as its own causal sequence, for
//!   baselines and tests.
//! - [`LogProbMap`]: which logit row predicts which scored token of which completion;
//!   [`LogProbMap::gather`] reads the log-probs on the CPU and [`LogProbMap::backward`] gives the
//!   gradient with respect to the logits.
//! - The same gather as CUDA kernels (csrc/kernels/logprob_gather.cuh): [`DeviceLogProbMap`] on a
//!   device, [`EmuLogProbGather`] on the CPU emulator, both prepared by [`LogProbGatherPlan`].
//!
//! Bad input (empty prompt or completion, k = 0, a sample longer than `max_len` without
//! [`BatchOptions::truncate`] or too long even truncated, a token id beyond
//! [`BatchOptions::vocab`]) is a typed [`crate::Error`] naming the sample index; a NaN or
//! infinite logit the gather reads is [`crate::Error::NonFiniteLogit`] (see
//! [`LogProbMap::gather`]).

mod logprob;
mod logprob_emu;
mod logprob_gpu;
mod logprob_launch;
mod options;
mod pack;
mod rows;
mod sample;
mod truncate;

pub use logprob::{CompletionRef, LogProbMap, LogProbs};
pub use logprob_emu::EmuLogProbGather;
pub use logprob_gpu::{DeviceLogProbMap, DeviceLogProbs};
pub use logprob_launch::{
    gather_kernel, sum_kernel, GatherElement, LogProbGatherPlan, LogitsLayout,
};
pub use options::BatchOptions;
pub use rows::{Batch, UnitPlacement};
pub use sample::{Sample, TokenTree};
pub use truncate::Truncation;
