//! Shared by the backward tests (emulator and GPU): the bounds and the f64 magnitudes they are
//! computed from (docs/backward.md), seeded dO, the kernel choices, and the emulated
//! forward + backward with poisoned, guarded outputs. Needs `mod forward_support;` next to it.
#![allow(dead_code)]

pub mod bounds;
pub mod configs;
pub mod run;
