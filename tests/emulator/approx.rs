//! The emulator's model of the device's approximate instructions (exp2_fast = ex2.approx.ftz.f32,
//! log2_fast = lg2.approx.ftz.f32; csrc/emu/approx.cpp) in each of its modes, through the probe
//! kernels under all three schedules:
//!
//! - every mode stays within the PTX ISA's documented error and its special-value tables, and
//!   flushes subnormal inputs and results (.ftz);
//! - exact is the correctly rounded value;
//! - perturbed actually moves results (both ways, over the whole allowed range), reproducibly,
//!   independently of the schedule, and differently for another seed;
//! - the worst cases move every result by the whole allowed error in their direction;
//! - the checks themselves reject a result just beyond the documented error.

use crate::emu_support;

use emu_support::approx::{approx_inputs, ex2_ok, ex2_rounded, lg2_max_error, lg2_ok};
use prefix_attn::emu::probes::{ProbeConvert, ProbeLog2};
use prefix_attn::emu::{self, check_schedules, watch, Approx, GuardedBuf, Options, Sign};
use prefix_attn::ffi::emu::*;

const SEED: u64 = 0xa99c_0001;

/// exp2_fast and log2_fast of `input` under `approx` (identical under every schedule).
fn run(input: &[f32], approx: Approx) -> (Vec<f32>, Vec<f32>) {
    let n = input.len();
    let inp = GuardedBuf::from_slice(input);
    let bits = GuardedBuf::<u16>::filled(n, 0);
    let scratch: Vec<GuardedBuf<u32>> = (0..4).map(|_| GuardedBuf::filled(n, 0)).collect();
    let exp2 = GuardedBuf::<f32>::filled(n, -7.0);
    let sums = GuardedBuf::<f32>::filled(PA_PROBE_ATOMIC_SLOTS as usize, 0.0);
    let convert = PaProbeConvertParams {
        in_: inp.as_ptr(),
        bits16: bits.as_ptr(),
        to_bf16: scratch[0].as_mut_ptr() as *mut u16,
        to_f16: scratch[1].as_mut_ptr() as *mut u16,
        bf16_to_float: scratch[2].as_mut_ptr() as *mut f32,
        f16_to_float: scratch[3].as_mut_ptr() as *mut f32,
        pack_bf16: scratch[0].as_mut_ptr(),
        pack_f16: scratch[1].as_mut_ptr(),
        exp2: exp2.as_mut_ptr(),
        atomic_sums: sums.as_mut_ptr(),
        count: n as i64,
    };
    // Only exp2 is watched: the scratch outputs alias one another on purpose.
    check_schedules(
        ProbeConvert::kernel().unwrap().name(),
        SEED,
        &[watch("exp2", &exp2)],
        |s| unsafe {
            emu::launch(
                ProbeConvert::kernel().unwrap(),
                &ProbeConvert::dims(n),
                &convert,
                Options::from(s).with_approx(approx),
            )
        },
    )
    .unwrap();
    let log2 = GuardedBuf::<f32>::filled(n, -7.0);
    let lg = PaProbeLog2Params {
        in_: inp.as_ptr(),
        out: log2.as_mut_ptr(),
        count: n as i64,
    };
    check_schedules(
        ProbeLog2::kernel().unwrap().name(),
        SEED,
        &[watch("log2", &log2)],
        |s| unsafe {
            emu::launch(
                ProbeLog2::kernel().unwrap(),
                &ProbeLog2::dims(n),
                &lg,
                Options::from(s).with_approx(approx),
            )
        },
    )
    .unwrap();
    (exp2.to_vec(), log2.to_vec())
}

/// Per input: ex2's distance in floats from the correctly rounded result and lg2's error as a
/// signed fraction of its documented maximum (None for the special-value tables), after checking
/// both against the PTX ISA.
fn measure(input: &[f32], approx: Approx) -> (Vec<Option<i64>>, Vec<Option<f64>>) {
    let (e, l) = run(input, approx);
    let mut ex2 = Vec::new();
    let mut lg2 = Vec::new();
    for (i, &x) in input.iter().enumerate() {
        let d = ex2_ok(x, e[i]).unwrap_or_else(|m| panic!("{approx}: {m}"));
        ex2.push(d.map(|_| {
            let c = ex2_rounded(x).unwrap();
            e[i].to_bits() as i64 - c.to_bits() as i64
        }));
        let f = lg2_ok(x, l[i]).unwrap_or_else(|m| panic!("{approx}: {m}"));
        lg2.push(f.map(|_| (l[i] as f64 - (x as f64).log2()) / lg2_max_error(x)));
    }
    (ex2, lg2)
}

/// ex2 results that are normal and away from the underflow and overflow edges, where a move of
/// 2 floats is always possible.
fn movable(x: f32) -> bool {
    ex2_rounded(x).is_some_and(|c| (4.0 * f32::MIN_POSITIVE..1e38).contains(&c))
}

#[test]
fn exact_is_correctly_rounded_with_ftz() {
    let input = approx_inputs(1);
    let (e, l) = run(&input, Approx::Exact);
    for (i, &x) in input.iter().enumerate() {
        ex2_ok(x, e[i]).unwrap();
        lg2_ok(x, l[i]).unwrap();
        if let Some(c) = ex2_rounded(x) {
            let c = if c < f32::MIN_POSITIVE { 0.0 } else { c };
            assert_eq!(e[i].to_bits(), c.to_bits(), "exp2({x:e})");
        }
        if x.is_normal() && x > 0.0 {
            let c = (x as f64).log2() as f32;
            assert_eq!(l[i].to_bits(), c.to_bits(), "log2({x:e})");
        }
    }
    // .ftz: subnormal inputs are zeros, subnormal results are +0.
    assert_eq!(e[input.iter().position(|&x| x == 1e-45).unwrap()], 1.0);
    assert_eq!(
        l[input.iter().position(|&x| x == 3e-39).unwrap()],
        f32::NEG_INFINITY
    );
    assert_eq!(e[input.iter().position(|&x| x == -126.5).unwrap()], 0.0);
    assert_eq!(
        e[input.iter().position(|&x| x == -126.0).unwrap()],
        f32::MIN_POSITIVE
    );
}

#[test]
fn perturbed_moves_within_the_documented_error() {
    let input = approx_inputs(2);
    let seed = 0x1234_5678;
    let (ex2, lg2) = measure(&input, Approx::Perturbed { seed });
    // ex2: every move from -2 to 2 floats occurs, each about a fifth of the time.
    let moves: Vec<i64> = input
        .iter()
        .zip(&ex2)
        .filter(|(&x, _)| movable(x))
        .map(|(_, d)| d.unwrap())
        .collect();
    for k in -2..=2 {
        let share = moves.iter().filter(|&&d| d == k).count() as f64 / moves.len() as f64;
        assert!(
            (0.12..0.28).contains(&share),
            "ex2 moved {k} floats in {share:.3} of cases"
        );
    }
    // lg2: errors spread over the allowed range, both signs.
    let fr: Vec<f64> = lg2.iter().flatten().copied().collect();
    let max = fr.iter().cloned().fold(f64::MIN, f64::max);
    let min = fr.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        max > 0.8 && min < -0.8,
        "lg2 error fractions in [{min}, {max}]"
    );
    // Reproducible, and another seed moves differently.
    let bits = |(e, l): (Vec<f32>, Vec<f32>)| -> Vec<u32> {
        e.iter().chain(&l).map(|x| x.to_bits()).collect()
    };
    assert_eq!(
        bits(run(&input, Approx::Perturbed { seed })),
        bits(run(&input, Approx::Perturbed { seed }))
    );
    let (other, _) = measure(&input, Approx::Perturbed { seed: seed + 1 });
    let differ = ex2.iter().zip(&other).filter(|(a, b)| a != b).count();
    assert!(
        differ > input.len() / 2,
        "{differ} of {} differ",
        input.len()
    );
}

#[test]
fn worst_cases_move_by_the_whole_documented_error() {
    let input = approx_inputs(3);
    for (sign, k) in [(Sign::Up, 2i64), (Sign::Down, -2)] {
        let (ex2, lg2) = measure(&input, Approx::WorstCase(sign));
        for (i, &x) in input.iter().enumerate() {
            if movable(x) {
                assert_eq!(ex2[i], Some(k), "{sign:?}: exp2({x:e})");
            }
            if let Some(f) = lg2[i] {
                // The whole error less at most one f32 ulp of the result (< half the error).
                let f = if k > 0 { f } else { -f };
                assert!((0.5..=1.0).contains(&f), "{sign:?}: log2({x:e}) moved {f}");
            }
        }
    }
}

#[test]
fn the_checks_reject_results_beyond_the_documented_error() {
    let x = 0.3f32;
    let c = ex2_rounded(x).unwrap();
    assert!(ex2_ok(x, f32::from_bits(c.to_bits() + 2)).is_ok());
    assert!(ex2_ok(x, f32::from_bits(c.to_bits() + 3)).is_err());
    assert!(ex2_ok(x, f32::from_bits(c.to_bits() - 3)).is_err());
    assert!(ex2_ok(-3e-39, 0.999_999_9).is_err()); // a subnormal input is a zero: exactly 1
    assert!(ex2_ok(-126.5, 5e-39).is_err()); // a subnormal result must be flushed
    for x in [1.5f32, 1000.0, 1e-30] {
        let v = (x as f64).log2();
        let max = lg2_max_error(x);
        // 0.7 and 1.5 of the maximum stay inside / outside after rounding to f32.
        assert!(lg2_ok(x, (v + 0.7 * max) as f32).is_ok());
        assert!(lg2_ok(x, (v + 1.5 * max) as f32).is_err(), "{x}");
        assert!(lg2_ok(x, (v - 1.5 * max) as f32).is_err(), "{x}");
    }
    assert!(lg2_ok(3e-39, -126.0).is_err()); // a subnormal input is a zero: -inf
    assert!(lg2_ok(-1.0, 0.0).is_err());
}
