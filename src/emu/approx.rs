//! How the emulator computes the device's approximate instructions `ex2.approx.ftz.f32` and
//! `lg2.approx.ftz.f32` (`exp2_fast` / `log2_fast` in kernels). The PTX ISA specifies them only
//! within a maximum error, so an emulator that computed them exactly would pass bounds the
//! hardware may break. csrc/emu/approx.cpp has the model; docs/forward.md uses the same figures:
//!
//! - `ex2`: at most 2 ulp from the correctly rounded result;
//! - `lg2`: at most 2^-22 absolute for inputs in (0.5, 2), 2^-22 relative elsewhere;
//! - `.ftz`: subnormal inputs and results flushed to zero (in every mode).

use crate::ffi::emu::{
    PA_EMU_APPROX_EXACT, PA_EMU_APPROX_PERTURBED, PA_EMU_APPROX_WORST_DOWN, PA_EMU_APPROX_WORST_UP,
};

/// Which way [`Approx::WorstCase`] moves every result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    Up,
    Down,
}

/// The emulator's model of `exp2_fast` / `log2_fast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approx {
    /// Correctly rounded (for bit-level comparisons with the f64 functions and fidelity probes).
    Exact,
    /// The correctly rounded value moved by a pseudo-random amount within the documented error,
    /// a hash of the seed and the input's bits: reproducible, and the same in every thread and
    /// schedule, so schedule comparisons still work.
    Perturbed { seed: u64 },
    /// Every result moved by the whole documented error in one direction (2 ulp for `ex2`,
    /// `2^-22 max(1, |log2 x|)` for `lg2`): the systematic extreme of the hardware's latitude.
    WorstCase(Sign),
}

impl Approx {
    /// What a launch gets unless it asks otherwise ([`super::Options`] from a
    /// [`super::Schedule`]): perturbed, so a kernel-vs-reference bound that holds on the
    /// emulator does not lean on more accuracy than the hardware documents.
    pub const DEFAULT: Approx = Approx::Perturbed {
        seed: 0xa99c_0e2f_5eed_0009,
    };

    pub(crate) fn code(self) -> (u32, u64) {
        match self {
            Approx::Exact => (PA_EMU_APPROX_EXACT, 0),
            Approx::Perturbed { seed } => (PA_EMU_APPROX_PERTURBED, seed),
            Approx::WorstCase(Sign::Up) => (PA_EMU_APPROX_WORST_UP, 0),
            Approx::WorstCase(Sign::Down) => (PA_EMU_APPROX_WORST_DOWN, 0),
        }
    }

    /// The modes a bound check runs: exact, perturbed (the default seed) and both worst cases.
    pub fn all() -> [Approx; 4] {
        [
            Approx::Exact,
            Approx::DEFAULT,
            Approx::WorstCase(Sign::Up),
            Approx::WorstCase(Sign::Down),
        ]
    }
}

impl std::fmt::Display for Approx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Approx::Exact => write!(f, "exact"),
            Approx::Perturbed { seed } => write!(f, "perturbed(seed {seed:#x})"),
            Approx::WorstCase(Sign::Up) => write!(f, "worst case up"),
            Approx::WorstCase(Sign::Down) => write!(f, "worst case down"),
        }
    }
}
