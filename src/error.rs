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
    /// A batch (or a shape) has no rows at all; `what` names the argument.
    NoRows { what: &'static str },
    /// A row builder was asked for more tokens than [`crate::layout::MAX_ROW_TOKENS`] (each
    /// built token keeps host metadata, so such a size is refused before allocating).
    RowTooLong {
        what: &'static str,
        tokens: u128,
        max: usize,
    },
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
    /// A tensor holds, or is laid out for, a whole number of heads other than the number the
    /// shape says (K or V given with `q_heads`, Q with `kv_heads`, ...).
    WrongHeadCount {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    /// A numeric argument is out of its domain (NaN scale, zero size...).
    InvalidArgument { what: &'static str, detail: String },

    // ---- batch builder ----
    /// A sample's prompt has no tokens.
    EmptyPrompt { sample: usize },
    /// A sample has no completions (k = 0).
    NoCompletions { sample: usize },
    /// A completion has no tokens.
    EmptyCompletion { sample: usize, completion: usize },
    /// A sample does not fit in one row: truncation was not asked for (`truncated_len` is
    /// `None`), or even truncated it does not fit (`truncated_len` is the fewest tokens
    /// truncation can leave: every segment except the completions' last ones, plus one token
    /// per completion).
    SampleTooLong {
        sample: usize,
        len: usize,
        max_len: usize,
        truncated_len: Option<usize>,
    },
    /// A token id is not below the vocabulary size.
    TokenOutOfVocab {
        sample: usize,
        position: usize,
        token: u32,
        vocab: u32,
    },

    /// A logit the gather reads is NaN or +inf, or the target's own logit is -inf, so the
    /// log-prob would be NaN or -inf. Names the completion, the scored token (`position` in the
    /// completion's list), the flat logit row (`row * n + t`) and the vocabulary column;
    /// `value` is `"NaN"`, `"+inf"` or `"-inf"`.
    NonFiniteLogit {
        sample: usize,
        completion: usize,
        position: usize,
        logit_row: usize,
        vocab_index: usize,
        value: &'static str,
    },

    // ---- CUDA ----
    /// The crate was built without nvcc, so there are no kernels to load.
    KernelsNotBuilt { reason: String },
    /// No usable CUDA driver or device.
    NoDevice { reason: String },
    /// The CUDA driver returned an error.
    Cuda { call: &'static str, detail: String },
    /// A CUDA library loaded at run time (libcublas) was not found.
    LibraryNotFound {
        library: &'static str,
        detail: String,
    },

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
            NoRows { what } => write!(f, "{what}: there are no rows (at least one is needed)"),
            RowTooLong { what, tokens, max } => write!(
                f,
                "{what}: {tokens} tokens in one row is over the limit of {max} (a built row keeps \
                 {} bytes of host metadata per token; see prefix_attn::layout::MAX_ROW_TOKENS)",
                crate::layout::ROW_HOST_BYTES_PER_TOKEN
            ),
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
            WrongHeadCount {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what}: the shape says {expected} heads, the tensor is sized or laid out for \
                 {found} (q, o, d_o and dq have q_heads; k, v, dk and dv have kv_heads)"
            ),
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
                truncated_len: None,
            } => write!(
                f,
                "sample {sample}: {len} tokens do not fit in a row of max_len {max_len} (truncation was not asked for)"
            ),
            SampleTooLong {
                sample,
                len,
                max_len,
                truncated_len: Some(shortest),
            } => write!(
                f,
                "sample {sample}: {len} tokens do not fit in a row of max_len {max_len}, even \
                 truncated: truncation only shortens completions, and with one token left per \
                 completion the sample still has {shortest} tokens"
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
            NonFiniteLogit {
                sample,
                completion,
                position,
                logit_row,
                vocab_index,
                value,
            } => write!(
                f,
                "sample {sample}, completion {completion}, scored token {position}: logit \
                 [{logit_row}, {vocab_index}] is {value}, so its log-prob is undefined (NaN and \
                 +inf are refused anywhere in a read logit row, -inf only at the target)"
            ),
            KernelsNotBuilt { reason } => write!(
                f,
                "prefix-attn was built without its CUDA kernels ({reason}). Get nvcc 13.0 with \
                 `{}` (or set CUDA_HOME to a CUDA 13 toolkit), then rebuild",
                crate::cuda::GET_NVCC
            ),
            NoDevice { reason } => write!(f, "no usable CUDA device: {reason}"),
            Cuda { call, detail } => write!(f, "CUDA error in {call}: {detail}"),
            LibraryNotFound { library, detail } => {
                write!(f, "{library} was not found: {detail}")
            }
            InvalidTensorMap { field, detail } => write!(f, "tensor map {field}: {detail}"),
            Emulator { kernel, detail } => write!(f, "emulator, kernel {kernel}: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

/// A cudarc call a trainer makes next to this crate's (allocations, copies, synchronisation)
/// converts with `?`: the driver's error becomes [`Error::Cuda`]. The crate's own calls name the
/// driver call instead.
impl From<cudarc::driver::DriverError> for Error {
    fn from(e: cudarc::driver::DriverError) -> Self {
        Error::Cuda {
            call: "cudarc driver call",
            detail: e.to_string(),
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
