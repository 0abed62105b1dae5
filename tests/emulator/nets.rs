//! The nets a GPU does not give: each planted bug of csrc/test_kernels/emu_planted.cuh must be caught,
//! with a message that says what and where; the bug-free control must pass.

use crate::emu_support;

use emu_support::*;
use prefix_attn::emu::probes::EmuPlanted;
use prefix_attn::emu::{self, check_schedules, watch, GuardedBuf, Schedule};
use prefix_attn::ffi::emu::*;
use prefix_attn::Error;

const THREADS: u32 = 64;

struct Setup {
    input: GuardedBuf<u32>,
    out: GuardedBuf<u32>,
    params: PaEmuPlantedParams,
}

fn setup(mode: u32) -> Setup {
    let input = GuardedBuf::from_slice(&random_u32(THREADS as usize, 21));
    let out = GuardedBuf::<u32>::filled(THREADS as usize, 0x0bad_f00d);
    let params = PaEmuPlantedParams {
        in_: input.as_ptr(),
        out: out.as_mut_ptr(),
        count: THREADS as i32,
        mode: mode as i32,
    };
    Setup { input, out, params }
}

/// Runs the mode under the schedule check and returns its error text.
fn planted_error(mode: u32) -> String {
    let s = setup(mode);
    let dims = EmuPlanted::dims(THREADS);
    let err = check_schedules(
        EmuPlanted::kernel().unwrap().name(),
        9,
        &[watch("in", &s.input), watch("out", &s.out)],
        |sch| unsafe { emu::launch(EmuPlanted::kernel().unwrap(), &dims, &s.params, sch) },
    )
    .expect_err("the planted bug must be caught");
    match &err {
        Error::Emulator { kernel, .. } => assert_eq!(*kernel, "emu_planted"),
        other => panic!("expected Error::Emulator, got {other:?}"),
    }
    err.to_string()
}

fn assert_contains(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{text:?} should mention {p:?}");
    }
}

#[test]
fn the_correct_exchange_passes_and_is_right() {
    let s = setup(PA_EMU_PLANTED_CORRECT);
    let dims = EmuPlanted::dims(THREADS);
    check_schedules(
        EmuPlanted::kernel().unwrap().name(),
        9,
        &[watch("out", &s.out)],
        |sch| unsafe { emu::launch(EmuPlanted::kernel().unwrap(), &dims, &s.params, sch) },
    )
    .unwrap();
    let input = s.input.as_slice();
    for t in 0..THREADS as usize {
        let e = input[(t + 1) % THREADS as usize]
            .wrapping_mul(3)
            .wrapping_add(1);
        assert_eq!(s.out.as_slice()[t], e, "thread {t}");
    }
}

#[test]
fn a_missing_barrier_is_reported_as_a_race_with_buffer_and_index() {
    let e = planted_error(PA_EMU_PLANTED_RACE);
    // Ascending: thread 0 reads word 1 before thread 1 wrote it.
    assert_contains(
        &e,
        &[
            "race",
            "buffer `out`",
            "element 0",
            "ascending",
            "descending",
        ],
    );
}

#[test]
fn an_out_of_bounds_write_is_caught_by_the_guards() {
    let e = planted_error(PA_EMU_PLANTED_OOB_WRITE);
    assert_contains(
        &e,
        &[
            "out-of-bounds",
            "buffer `out`",
            "element 64",
            "past its end",
        ],
    );
}

#[test]
fn a_divergent_collective_is_reported_with_both_sites() {
    let e = planted_error(PA_EMU_PLANTED_DIVERGENT_SHFL);
    assert_contains(
        &e,
        &["divergent collective", "shfl_xor", "emu_planted.cuh:"],
    );
}

#[test]
fn a_thread_exiting_before_a_barrier_is_reported() {
    let e = planted_error(PA_EMU_PLANTED_EXIT_BEFORE_BARRIER);
    assert_contains(&e, &["barrier", "exit"]);
}

#[test]
fn barriers_at_different_sites_are_reported() {
    let e = planted_error(PA_EMU_PLANTED_SPLIT_BARRIER);
    assert_contains(&e, &["divergent code", "emu_planted.cuh:"]);
}

#[test]
fn an_ldmatrix_row_outside_shared_memory_is_reported() {
    let e = planted_error(PA_EMU_PLANTED_LDMATRIX_OUTSIDE);
    assert_contains(&e, &["ldmatrix_x1", "lane 3", "offset 256"]);
}

#[test]
fn reading_before_cp_async_wait_shows_up_as_a_race() {
    // The copy lands at the wait, so the early read sees the schedule-dependent poison.
    let e = planted_error(PA_EMU_PLANTED_READ_BEFORE_WAIT);
    assert_contains(&e, &["race", "buffer `out`"]);
}

#[test]
fn a_cp_async_into_a_buffer_another_warp_still_reads_is_caught() {
    // Stage 2 is issued before the barrier that would end the other warp's reads of stage 1 and
    // waited for after a collective. A GPU may land the copy any time in between; the
    // descending schedule lands it at the issue and runs each warp ahead to its next barrier,
    // so the other warp reads stage 2 where the ascending schedule (landing at the wait) gives
    // stage 1.
    let e = planted_error(PA_EMU_PLANTED_EARLY_OVERWRITE);
    assert_contains(&e, &["race", "buffer `out`", "descending"]);
}

#[test]
fn a_write_past_shared_memory_is_caught_by_its_guard() {
    let e = planted_error(PA_EMU_PLANTED_SMEM_OVERRUN);
    assert_contains(&e, &["past the end", "shared memory"]);
}

#[test]
fn every_planted_mode_is_tested() {
    // A new mode in pa_test_params.h must get its test here.
    assert_eq!(PA_EMU_PLANTED_MODES, 10);
}

#[test]
fn a_failed_launch_leaves_the_emulator_usable() {
    let bad = setup(PA_EMU_PLANTED_DIVERGENT_SHFL);
    let dims = EmuPlanted::dims(THREADS);
    for _ in 0..3 {
        assert!(unsafe {
            emu::launch(
                EmuPlanted::kernel().unwrap(),
                &dims,
                &bad.params,
                Schedule::Ascending,
            )
        }
        .is_err());
    }
    let good = setup(PA_EMU_PLANTED_CORRECT);
    unsafe {
        emu::launch(
            EmuPlanted::kernel().unwrap(),
            &dims,
            &good.params,
            Schedule::Random { seed: 1 },
        )
    }
    .unwrap();
}

#[test]
fn a_block_with_a_partial_warp_cannot_use_collectives() {
    let s = setup(PA_EMU_PLANTED_DIVERGENT_SHFL);
    let mut dims = EmuPlanted::dims(THREADS);
    dims.block = [48, 1, 1];
    // Descending runs the partial warp (threads 32..47) first.
    let e = unsafe {
        emu::launch(
            EmuPlanted::kernel().unwrap(),
            &dims,
            &s.params,
            Schedule::Descending,
        )
    }
    .unwrap_err();
    assert!(e.to_string().contains("only 16 threads"), "{e}");
}

#[test]
fn launch_bounds_are_enforced_like_on_the_gpu() {
    use prefix_attn::emu::probes::EmuGemmTile;
    let s = setup(PA_EMU_PLANTED_CORRECT);
    // emu_gemm_tile is registered with 128 threads (its launch bounds): 256 must be refused before it runs
    // (its params are never read).
    let mut dims = EmuGemmTile::dims();
    dims.block = [256, 1, 1];
    let params = PaEmuGemmTileParams {
        a: s.input.as_ptr() as *const u16,
        b: s.input.as_ptr() as *const u16,
        c: std::ptr::null_mut(),
        p: std::ptr::null_mut(),
        scale: 1.0,
        a_kmajor: 0,
        b_kmajor: 0,
        _pad0: 0,
    };
    let e = unsafe {
        emu::launch(
            EmuGemmTile::kernel().unwrap(),
            &dims,
            &params,
            Schedule::Ascending,
        )
    }
    .unwrap_err();
    assert!(e.to_string().contains("launch bounds (128)"), "{e}");
}

#[test]
fn a_smaller_fiber_stack_can_be_asked_for() {
    let s = setup(PA_EMU_PLANTED_CORRECT);
    let dims = EmuPlanted::dims(THREADS);
    let options = emu::Options {
        stack_bytes: 64 * 1024,
        ..emu::Options::from(Schedule::Random { seed: 5 })
    };
    let stats =
        unsafe { emu::launch(EmuPlanted::kernel().unwrap(), &dims, &s.params, options) }.unwrap();
    assert_eq!((stats.ctas, stats.barriers), (1, 1));
}
