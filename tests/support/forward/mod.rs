//! Shared by the forward tests (emulator and GPU): the covering case matrix, seeded inputs, the
//! comparison with the f64 reference within the crate's bounds (`prefix_attn::bounds`) as a
//! test failure message, layouts from the crate's row builders, and the edge cases beyond the
//! matrix.
#![allow(dead_code)]

pub mod cases;
pub mod check;
pub mod configs;
pub mod edge;
pub mod fused;
pub mod masks;
