//! Fixes the C allocator's thresholds before anything is timed, so that a point's timings do not
//! depend on what the points before it allocated.
//!
//! glibc's malloc adapts as a process runs: its mmap threshold rises each time a large block that
//! was mmapped is freed, and it gives the top of its heap back to the kernel when enough of it is
//! free. Every call of the CPU path allocates its outputs and scratch anew, so whether those
//! blocks come from reused heap pages or from fresh pages that the kernel must fault in and zero
//! depended on the history of the run. Measured on an idle 2-core machine (docs/bench.md, six
//! quick sweeps per setting, 15 run pairs x 48 points): the dataset point HH-RLHF came out at
//! 1.43x in some runs and 1.60x in others, each with a narrow interval, and 26 of the 720
//! comparisons had intervals that did not overlap. With the thresholds fixed, 6 did, 4 of them at
//! the smallest attention point (`attn_fwd p32_r16`), whose helper threads, started anew by every
//! call of the CPU path, allocate from arenas of their own; with one arena as well, 4 and 7 in two
//! sets of six runs, no point more than 3 times. Two exact, independent 95% intervals of one
//! quantity miss each other about 0.6% of the time, 4 of 720.
//!
//! Fixed here: mmap only above 32 MiB (glibc's largest threshold, above every allocation at the
//! CPU mode's default sizes; with it fixed, a block's size alone decides), the heap neither
//! trimmed nor padded as it changes (setting these also switches the adaptive threshold off), and
//! one arena for all threads. A no-op outside glibc (another allocator has other habits; the bench
//! then says so).

/// What [`pin`] did, for the bench's header line.
pub fn pin() -> &'static str {
    imp::pin()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::os::raw::c_int;

    extern "C" {
        // glibc's malloc.h (M_ARENA_MAX since glibc 2.10).
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_TOP_PAD: c_int = -2;
    const M_MMAP_THRESHOLD: c_int = -3;
    const M_ARENA_MAX: c_int = -8;

    pub fn pin() -> &'static str {
        let set = [
            (M_MMAP_THRESHOLD, 32 << 20),
            (M_TRIM_THRESHOLD, 1 << 30),
            (M_TOP_PAD, 64 << 20),
            (M_ARENA_MAX, 1),
        ];
        // SAFETY: mallopt only changes the allocator's tuning parameters; glibc documents it as
        // callable at any time, and these values are within its documented ranges.
        let ok = set.iter().all(|&(p, v)| unsafe { mallopt(p, v) } == 1);
        if ok {
            "glibc malloc thresholds fixed (docs/bench.md)"
        } else {
            "glibc refused to fix its malloc thresholds: timings may depend on earlier points"
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub fn pin() -> &'static str {
        "allocator thresholds not fixed (not glibc): timings may depend on earlier points"
    }
}
