//! Shared by the backward tests (emulator and GPU): the crate's bounds (`prefix_attn::bounds`,
//! docs/backward.md) as test checks, seeded dO, the kernel choices, and the emulated forward +
//! backward with poisoned, guarded outputs. Needs `mod forward_support;` next to it.
#![allow(dead_code)]

pub mod check;
pub mod configs;
pub mod run;
