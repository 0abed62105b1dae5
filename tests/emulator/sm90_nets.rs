//! The Hopper nets: each planted bug of csrc/test_kernels/emu_planted_sm90.cuh must be caught with a
//! message that says what and where; the bug-free control must pass and compute the right values.

use crate::emu_support;

use emu_support::sm90::dec16;
use emu_support::*;
use prefix_attn::emu::probes::EmuPlantedSm90;
use prefix_attn::emu::{self, check_schedules, watch, GuardedBuf};
use prefix_attn::ffi::emu::*;
use prefix_attn::sm90::{TensorMapDesc, TmaDtype, TmaSwizzle};
use prefix_attn::Error;

struct Setup {
    input: GuardedBuf<u32>,
    out: GuardedBuf<u32>,
    params: PaEmuPlantedSm90Params,
}

fn setup(mode: u32) -> Setup {
    // Each word two bf16 values k/8 (|k| <= 8), so the control's wgmma sums are exact.
    let mut r = rng(31);
    let words: Vec<u32> = (0..4096)
        .map(|_| {
            let h = |r: &mut rand::rngs::StdRng| {
                half::bf16::from_f32(rand::Rng::random_range(r, -8i32..=8) as f32 / 8.0).to_bits()
                    as u32
            };
            h(&mut r) | h(&mut r) << 16
        })
        .collect();
    let input = GuardedBuf::from_slice(&words);
    let out = GuardedBuf::<u32>::filled(4096, 0x0bad_f00d);
    let desc = TensorMapDesc::matrix(
        TmaDtype::U32,
        input.as_ptr() as u64,
        [64, 64],
        256,
        [16, 8],
        TmaSwizzle::None,
    );
    let params = PaEmuPlantedSm90Params {
        map: desc.encode_emulator().unwrap(),
        in_: input.as_ptr(),
        out: out.as_mut_ptr(),
        mode: mode as i32,
        _pad0: 0,
    };
    Setup { input, out, params }
}

fn planted_error(mode: u32) -> String {
    let s = setup(mode);
    let dims = EmuPlantedSm90::dims();
    let err = check_schedules(
        EmuPlantedSm90::kernel().unwrap().name(),
        11,
        &[watch("out", &s.out)],
        |sch| unsafe { emu::launch(EmuPlantedSm90::kernel().unwrap(), &dims, &s.params, sch) },
    )
    .expect_err("the planted bug must be caught");
    match &err {
        Error::Emulator { kernel, .. } => assert_eq!(*kernel, "emu_planted_sm90"),
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
fn the_correct_tma_mbarrier_wgmma_flow_passes_and_is_right() {
    let s = setup(PA_SM90_PLANTED_CORRECT);
    let dims = EmuPlantedSm90::dims();
    check_schedules(
        EmuPlantedSm90::kernel().unwrap().name(),
        11,
        &[watch("out", &s.out)],
        |sch| unsafe { emu::launch(EmuPlantedSm90::kernel().unwrap(), &dims, &s.params, sch) },
    )
    .unwrap();
    let input = s.input.as_slice();
    let out = s.out.as_slice();
    // The box at (8, 16): 16 rows of 8 words.
    let stage: Vec<u32> = (0..128)
        .map(|w| input[(16 + w / 8) * 64 + 8 + w % 8])
        .collect();
    for t in 0..256 {
        assert_eq!(out[t], stage[t % 128], "thread {t}: the TMA box");
    }
    // D = A * B with A = 1 and B the stage read as 16 x 16 bf16 (K-major, no swizzle, SBO 128,
    // LBO 256): D[m][n] = sum over k of B[n][k].
    let bytes: Vec<u8> = stage.iter().flat_map(|w| w.to_le_bytes()).collect();
    let b = |n: usize, k: usize| {
        let at = (n / 8) * 128 + (k / 8) * 256 + (n % 8) * 16 + (k % 8) * 2;
        dec16(u16::from_le_bytes([bytes[at], bytes[at + 1]]), false)
    };
    for t in 0..128 {
        for j in 0..8 {
            let (_, n) = emu_support::sm90::acc_pos(t, j);
            let e = (0..16).map(|k| b(n, k)).sum::<f64>() as f32;
            assert_eq!(
                f32::from_bits(out[256 + 8 * t + j]),
                e,
                "thread {t} register {j}"
            );
        }
    }
}

#[test]
fn an_arrival_beyond_the_count_is_reported() {
    let e = planted_error(PA_SM90_PLANTED_OVER_ARRIVE);
    assert_contains(&e, &["over-arrival", "phase 0", "emu_planted_sm90.cuh:"]);
}

#[test]
fn more_bytes_than_expected_is_a_tx_underflow() {
    let e = planted_error(PA_SM90_PLANTED_TX_UNDERFLOW);
    assert_contains(&e, &["tx underflow", "256 more"]);
}

#[test]
fn waiting_with_a_stale_parity_is_two_phases_away() {
    let e = planted_error(PA_SM90_PLANTED_STALE_PARITY);
    assert_contains(
        &e,
        &["two phases away", "flip the parity", "try_wait.parity"],
    );
}

#[test]
fn an_mbarrier_used_before_its_init_is_reported() {
    // Only some schedules run another thread before the initializing one: the missing barrier
    // after init shows up there.
    let e = planted_error(PA_SM90_PLANTED_BEFORE_INIT);
    assert_contains(&e, &["no mbarrier was initialized", "shared offset 0"]);
}

#[test]
fn init_of_an_mbarrier_in_use_is_reported() {
    let e = planted_error(PA_SM90_PLANTED_INIT_IN_USE);
    assert_contains(&e, &["re-initializes", "in use", "1 of 2 arrivals pending"]);
}

#[test]
fn a_deadlock_names_the_barrier_and_the_phase() {
    let e = planted_error(PA_SM90_PLANTED_DEADLOCK);
    assert_contains(
        &e,
        &[
            "no thread can make progress",
            "waits on the mbarrier at shared offset 0",
            "for phase 0 (parity 0)",
            "1 of 2 arrivals pending",
        ],
    );
}

#[test]
fn an_ordinary_store_over_a_live_mbarrier_is_reported() {
    let e = planted_error(PA_SM90_PLANTED_OVERWRITTEN);
    assert_contains(&e, &["overwritten since its init"]);
}

#[test]
fn mismatched_named_barrier_counts_are_reported() {
    let e = planted_error(PA_SM90_PLANTED_NAMED_COUNTS);
    assert_contains(&e, &["mismatched counts", "bar.sync 1"]);
}

#[test]
fn a_cta_ending_with_a_half_arrived_named_barrier_is_reported() {
    let e = planted_error(PA_SM90_PLANTED_NAMED_HALF);
    assert_contains(&e, &["half-arrived", "named barrier 2", "32 of 64"]);
}

#[test]
fn half_a_warp_at_a_named_barrier_is_reported() {
    // Depending on the order, the lanes that skip the barrier exit while their warp-mates wait
    // at it, or the barrier can never complete.
    let e = planted_error(PA_SM90_PLANTED_NAMED_PARTIAL_WARP);
    assert_contains(&e, &["named barrier 3"]);
}

#[test]
fn reading_an_accumulator_before_its_wait_is_reported() {
    let e = planted_error(PA_SM90_PLANTED_ACC_BEFORE_WAIT);
    assert_contains(
        &e,
        &[
            "wgmma accumulator",
            "before a wgmma.wait_group covers",
            "emu_planted_sm90.cuh:",
        ],
    );
}

#[test]
fn a_wgmma_without_a_fence_after_a_register_access_is_reported() {
    let e = planted_error(PA_SM90_PLANTED_NO_FENCE);
    assert_contains(&e, &["accessed after the last wgmma.fence"]);
}

#[test]
fn a_warpgroup_not_aligned_to_four_warps_is_reported() {
    let e = planted_error(PA_SM90_PLANTED_MISALIGNED_WARPGROUP);
    assert_contains(&e, &["warpgroup", "multiple of 4"]);
}

#[test]
fn a_descriptor_that_differs_across_the_warpgroup_is_reported() {
    let e = planted_error(PA_SM90_PLANTED_NONUNIFORM_DESC);
    assert_contains(&e, &["descriptor of B differs", "thread 0", "thread 32"]);
}

#[test]
fn an_unsupported_descriptor_field_is_named() {
    let e = planted_error(PA_SM90_PLANTED_BAD_DESC);
    assert_contains(&e, &["matrix descriptor of A", "matrix base offset 1"]);
}

#[test]
fn setmaxnreg_must_be_uniform_in_the_warpgroup() {
    let e = planted_error(PA_SM90_PLANTED_SETMAXNREG);
    assert_contains(&e, &["setmaxnreg.inc", "divergent warpgroup instruction"]);
}

#[test]
fn reading_a_tma_box_before_its_mbarrier_is_a_race() {
    let e = planted_error(PA_SM90_PLANTED_TMA_READ_EARLY);
    assert_contains(&e, &["race", "buffer `out`"]);
}

#[test]
fn releasing_a_stage_before_the_wgmma_reading_it_completes_is_a_race() {
    // The descending schedule lands copies at their issue and lets wgmmas read at their wait:
    // the producer's refill lands before the wgmma that still reads the stage.
    let e = planted_error(PA_SM90_PLANTED_EARLY_RELEASE);
    assert_contains(&e, &["race", "buffer `out`", "descending"]);
}

#[test]
fn a_misaligned_tma_destination_is_reported() {
    let e = planted_error(PA_SM90_PLANTED_TMA_MISALIGNED);
    assert_contains(&e, &["cp.async.bulk.tensor.2d", "not 128-byte aligned"]);
}

#[test]
fn a_wgmma_reading_ordinary_stores_without_a_proxy_fence_is_reported() {
    // The operands written by ordinary stores and published by a barrier alone: the tensor cores
    // (async proxy) may read stale bytes. The message names the operand element and the fence.
    let e = planted_error(PA_SM90_PLANTED_NO_PROXY_FENCE);
    assert_contains(
        &e,
        &[
            "element (0, 0) of A",
            "fence.proxy.async.shared::cta",
            "emu_planted_sm90.cuh:",
        ],
    );
}

#[test]
fn every_planted_mode_is_tested() {
    // A new mode in pa_test_params.h must get its test here.
    assert_eq!(PA_SM90_PLANTED_MODES, 21);
}
