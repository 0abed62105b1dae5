//! Shared by the forward tests (emulator and GPU): mask builders, the covering case matrix,
//! seeded inputs and the comparison with the f64 reference.
#![allow(dead_code)]

pub mod cases;
pub mod check;
pub mod masks;
