//! Empty: this crate exists for its tests (tests/link.rs), which use prefix-attn, candle-core and
//! cudarc together.
