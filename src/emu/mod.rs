//! The SIMT emulator: every kernel of csrc/ also compiled, unchanged, by the host C++ compiler
//! (csrc/pa/host.cuh) and run on the CPU by the runtime in csrc/emu/, so that `cargo test` runs
//! every kernel entry point without a GPU. docs/testing-without-gpu.md tells the whole story.
//!
//! - [`launch`]: one launch, from the same [`LaunchDims`] and parameter struct as the GPU
//!   executor, under one [`Schedule`].
//! - [`GuardedBuf`]: host buffers with guard bytes on both sides, for kernel inputs and outputs.
//! - [`check_schedules`]: runs a launch under every schedule, checks the guards after each and
//!   compares the outputs: a difference is a race, reported with the buffer and the index.
//! - [`Approx`]: how the host computes the device's approximate `exp2_fast` / `log2_fast`
//!   (perturbed within the PTX ISA's documented error unless a launch asks otherwise).
//! - [`probes`]: the test and probe kernels of csrc/test_kernels/ (csrc/test_registry.cuh).

mod approx;
mod buffer;
pub mod probes;
mod schedules;

pub use approx::{Approx, Sign};
pub use buffer::{Element, GuardedBuf};
pub use schedules::{check_schedules, watch, Watch};

use crate::error::{Error, Result};
use crate::ffi::emu::{
    PaEmuLaunch, PaEmuReport, PA_EMU_OK, PA_EMU_SCHEDULE_ASCENDING, PA_EMU_SCHEDULE_DESCENDING,
    PA_EMU_SCHEDULE_RANDOM,
};
use crate::launch::LaunchDims;
use crate::registry::{KernelParams, KernelRef};

/// The order in which the emulator runs the threads of a CTA between two sync points (barriers,
/// warp collectives), the CTAs of the grid, and when cp.async copies land (on a GPU: any time
/// between the issue and the wait that completes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Lockstep rounds, thread 0 first; CTA 0 first; copies land at their wait.
    Ascending,
    /// Warp by warp, last warp (and lane) first, each warp running ahead until it waits at a
    /// barrier or exits; last CTA first; copies land at their issue.
    Descending,
    /// Lockstep rounds with a fresh seeded shuffle of the threads at every round (and of the
    /// CTAs once); each copy lands at its issue or at its wait, by a seeded coin.
    Random { seed: u64 },
}

impl Schedule {
    /// The three schedules a race check runs.
    pub fn all(seed: u64) -> [Schedule; 3] {
        [
            Schedule::Ascending,
            Schedule::Descending,
            Schedule::Random { seed },
        ]
    }

    fn code(self) -> (u32, u64) {
        match self {
            Schedule::Ascending => (PA_EMU_SCHEDULE_ASCENDING, 0),
            Schedule::Descending => (PA_EMU_SCHEDULE_DESCENDING, 0),
            Schedule::Random { seed } => (PA_EMU_SCHEDULE_RANDOM, seed),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Ascending => write!(f, "ascending"),
            Schedule::Descending => write!(f, "descending"),
            Schedule::Random { seed } => write!(f, "random(seed {seed:#x})"),
        }
    }
}

/// Options of one emulated launch beyond its dims and params.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub schedule: Schedule,
    /// Stack of each emulated thread; 0 = the runtime's default (256 KiB).
    pub stack_bytes: u32,
    /// How `exp2_fast` / `log2_fast` compute ([`Approx::DEFAULT`] from a [`Schedule`]).
    pub approx: Approx,
}

impl Options {
    /// `self` with `approx` as the model of the approximate instructions.
    pub fn with_approx(self, approx: Approx) -> Self {
        Options { approx, ..self }
    }
}

impl From<Schedule> for Options {
    fn from(schedule: Schedule) -> Self {
        Options {
            schedule,
            stack_bytes: 0,
            approx: Approx::DEFAULT,
        }
    }
}

/// What the emulator counted during a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub ctas: u64,
    pub barriers: u64,
    pub collectives: u64,
    pub fiber_switches: u64,
}

/// Runs `kernel` on the CPU with the same dims and params the GPU executor takes.
///
/// Errors: [`Error::Emulator`] naming the kernel when the launch is invalid (dims, shared memory)
/// or the kernel broke a rule the emulator checks (divergent collective, barrier not reached by
/// every thread, ldmatrix/cp.async address outside shared memory or misaligned, stack overflow).
///
/// # Safety
/// `params` must hold host pointers valid for everything the kernel reads and writes (as
/// [`crate::cuda::launch`] needs device pointers). Out-of-bounds writes into a
/// [`GuardedBuf`]'s guards are detected afterwards; elsewhere they are undefined behaviour.
pub unsafe fn launch<P: KernelParams>(
    kernel: KernelRef<P>,
    dims: &LaunchDims,
    params: &P,
    options: impl Into<Options>,
) -> Result<Stats> {
    let options = options.into();
    let (schedule, seed) = options.schedule.code();
    let (approx, approx_seed) = options.approx.code();
    let cfg = PaEmuLaunch {
        grid: dims.grid,
        block: dims.block,
        smem_bytes: dims.smem_bytes,
        schedule,
        seed,
        stack_bytes: options.stack_bytes,
        approx,
        approx_seed,
    };
    let mut report = PaEmuReport::default();
    let entry = kernel.info().emu;
    // SAFETY: cfg and report are valid for the call; `params` is the struct the kernel takes
    // (KernelRef checked it) and its pointers are the caller's promise.
    let rc = unsafe { entry(&cfg, (params as *const P).cast(), &mut report) };
    if rc != PA_EMU_OK as i32 {
        let bytes: Vec<u8> = report
            .detail
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        return Err(Error::Emulator {
            kernel: kernel.name(),
            detail: format!(
                "{} (schedule {}, approx {})",
                String::from_utf8_lossy(&bytes),
                options.schedule,
                options.approx
            ),
        });
    }
    Ok(Stats {
        ctas: report.ctas,
        barriers: report.barriers,
        collectives: report.collectives,
        fiber_switches: report.fiber_switches,
    })
}
