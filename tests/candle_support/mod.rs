//! What the candle op's tests share (tests/candle_op.rs on the CPU, tests/candle_device.rs on
//! candle's CUDA device): the cases, candle's own dense attention, its derived error bound, and
//! the three-way check.
#![allow(dead_code)] // each binary uses a different subset

pub mod cases;
pub mod check;
pub mod dense;
pub mod dense_bound;
