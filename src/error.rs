//! The crate's one error type. Every public constructor and call validates its input and returns
//! one of these, naming the offending value and where it is; nothing in the public API panics on
//! bad input.

use std::fmt;

/// What went wrong, with the offending value and its index.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    // ---- mask rule and row layouts ----
    /// A row has no tokens.
    EmptyRow { row: usize },
    /// `vis_end[index]` breaks `index <= vis_end[index] <= len`.
    VisEndOutOfRange {
        row: usize,
        index: usize,
        value: i64,
        len: usize,
    },
    /// Two things that must have the same length do not.
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A size would overflow the int32 indexing the kernels use.
    IndexOverflow { what: &'static str, value: u128 },
    /// A segment of a layout is empty or otherwise malformed.
    InvalidSegment {
        what: &'static str,
        index: usize,
        detail: String,
    },

    // ---- tiles and plans ----
    /// Tile sides must be positive multiples of 16 and at most 256.
    InvalidTileShape { block_q: usize, block_k: usize },

    // ---- attention shapes ----
    /// The number of query heads is not a positive multiple of the number of key/value heads.
    HeadCountMismatch { q_heads: usize, kv_heads: usize },
    /// Head dimension the kernels are not instantiated for.
    UnsupportedHeadDim { head_dim: usize },
    /// Element type the call does not take.
    UnsupportedDtype {
        what: &'static str,
        dtype: &'static str,
    },
    /// A tensor view's shape, stride or alignment is unusable.
    InvalidView { what: &'static str, detail: String },
    /// A numeric argument is out of its domain (NaN scale, zero size...).
    InvalidArgument { what: &'static str, detail: String },

    // ---- batch builder ----
    /// A sample's prompt has no tokens.
    EmptyPrompt { sample: usize },
    /// A sample has no completions (k = 0).
    NoCompletions { sample: usize },
    /// A completion has no tokens.
    EmptyCompletion { sample: usize, completion: usize },
    /// A sample does not fit in one row and truncation was not asked for.
    SampleTooLong {
        sample: usize,
        len: usize,
        max_len: usize,
    },
    /// A token id is not below the vocabulary size.
    TokenOutOfVocab {
        sample: usize,
        position: usize,
        token: u32,
        vocab: u32,
    },

    // ---- CUDA ----
    /// The crate was built without nvcc, so there are no kernels to load.
    KernelsNotBuilt { reason: String },
    /// No usable CUDA driver or device.
    NoDevice { reason: String },
    /// The CUDA driver returned an error.
    Cuda { call: &'static str, detail: String },

    // ---- Hopper tensor maps ----
    /// A tensor map description (`sm90::TensorMapDesc`) has a field the encoder refuses.
    InvalidTensorMap { field: String, detail: String },

    // ---- emulator ----
    /// The SIMT emulator detected a kernel bug (divergent collective, barrier mismatch, guard
    /// overwrite) or could not run the launch.
    Emulator {
        kernel: &'static str,
        detail: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match self {
            EmptyRow { row } => write!(f, "row {row} has no tokens"),
            VisEndOutOfRange {
                row,
                index,
                value,
                len,
            } => write!(
                f,
                "row {row}: vis_end[{index}] = {value} is outside [{index}, {len}] (the rule needs j <= vis_end[j] <= n)"
            ),
            LengthMismatch {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected length {expected}, got {got}"),
            IndexOverflow { what, value } => {
                write!(f, "{what} = {value} overflows the int32 indexing of the kernels")
            }
            InvalidSegment { what, index, detail } => write!(f, "{what} {index}: {detail}"),
            InvalidTileShape { block_q, block_k } => write!(
                f,
                "tile shape {block_q}x{block_k}: each side must be a positive multiple of 16, at most 256"
            ),
            HeadCountMismatch { q_heads, kv_heads } => write!(
                f,
                "{q_heads} query heads is not a positive multiple of {kv_heads} key/value heads"
            ),
            UnsupportedHeadDim { head_dim } => {
                write!(f, "head dim {head_dim} is not supported (kernels exist for 64 and 128)")
            }
            UnsupportedDtype { what, dtype } => write!(f, "{what}: dtype {dtype} is not supported"),
            InvalidView { what, detail } => write!(f, "{what}: {detail}"),
            InvalidArgument { what, detail } => write!(f, "{what}: {detail}"),
            EmptyPrompt { sample } => write!(f, "sample {sample}: the prompt is empty"),
            NoCompletions { sample } => write!(f, "sample {sample}: no completions (k = 0)"),
            EmptyCompletion { sample, completion } => {
                write!(f, "sample {sample}: completion {completion} is empty")
            }
            SampleTooLong {
                sample,
                len,
                max_len,
            } => write!(
                f,
                "sample {sample}: {len} tokens do not fit in a row of max_len {max_len} (truncation was not asked for)"
            ),
            TokenOutOfVocab {
                sample,
                position,
                token,
                vocab,
            } => write!(
                f,
                "sample {sample}: token {token} at position {position} is not below the vocabulary size {vocab}"
            ),
            KernelsNotBuilt { reason } => write!(
                f,
                "prefix-attn was built without its CUDA kernels ({reason}). Install nvcc (for example \
                 `pip install \"nvidia-cuda-nvcc==13.0.*\" \"nvidia-cuda-cccl==13.0.*\"` and point NVCC at \
                 the installed bin/nvcc, or set CUDA_HOME) and rebuild"
            ),
            NoDevice { reason } => write!(f, "no usable CUDA device: {reason}"),
            Cuda { call, detail } => write!(f, "CUDA error in {call}: {detail}"),
            InvalidTensorMap { field, detail } => write!(f, "tensor map {field}: {detail}"),
            Emulator { kernel, detail } => write!(f, "emulator, kernel {kernel}: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
