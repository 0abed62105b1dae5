//! The CUDA log-prob gather (csrc/kernels/logprob_gather.cuh) on the SIMT emulator, through the
//! same launch preparation as the GPU path ([`LogProbGatherPlan`]): random batches (prompts with
//! k completions and trees, shared and paired), seeded random logits (never zero) in bf16, f16
//! and f32, dense and padded rows, vocabularies that are not multiples of the block (97, 1000).
//! Every launch runs under all three schedules with guarded, poisoned outputs, and every
//! per-token log-prob and per-completion sum is compared with the CPU gather in f64 within the
//! bound of [`token_tolerance`]. Bad inputs must be typed errors. A GPU test compares the device
//! with the CPU gather the same way (reported as ignored, with the reason, without a device:
//! tests/support/device_harness.rs).

use libtest_mimic::Trial;

use half::{bf16, f16};
use prefix_attn::batch::{
    gather_kernel, Batch, BatchOptions, DeviceLogProbMap, DeviceLogProbs, EmuLogProbGather,
    GatherElement, LogProbGatherPlan, LogProbMap, LogitsLayout, Sample, TokenTree,
};
use prefix_attn::cuda::Gpu;
use prefix_attn::reference::Element;
use prefix_attn::Error;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// This module's trials (tests/gpu/main.rs runs them).
pub fn trials() -> Vec<Trial> {
    let mut trials = host_tests![
        bf16_logits_match_the_cpu_gather,
        f16_logits_match_the_cpu_gather,
        f32_logits_match_the_cpu_gather,
        rising_logits_exercise_the_online_rescale,
        bad_inputs_are_typed_errors,
    ];
    trials.extend(device_tests![
        gpu_gather_matches_the_cpu_gather,
        gpu_gather_sanitizer_case
    ]);
    trials
}

/// Output poison: a NaN, so an entry the kernels did not write fails every comparison.
const POISON: f32 = f32::from_bits(0x7fc0_dead);

fn tokens(rng: &mut StdRng, max_len: usize, vocab: u32) -> Vec<u32> {
    (0..rng.random_range(1..=max_len))
        .map(|_| rng.random_range(0..vocab))
        .collect()
}

/// A few prompts with 1-3 completions and small trees, token ids below `vocab`.
fn samples(rng: &mut StdRng, count: usize, vocab: u32) -> Vec<Sample> {
    (0..count)
        .map(|_| {
            if rng.random_bool(0.5) {
                let k = rng.random_range(1..=3);
                let completions = (0..k).map(|_| tokens(rng, 5, vocab)).collect();
                Sample::completions(tokens(rng, 6, vocab), completions)
            } else {
                let mut t = TokenTree::new(tokens(rng, 4, vocab));
                for id in 1..rng.random_range(2..=5) {
                    let parent = rng.random_range(0..id);
                    t.add_child(parent, tokens(rng, 4, vocab), rng.random_bool(0.8))
                        .unwrap();
                }
                Sample::Tree(t)
            }
        })
        .collect()
}

/// Logits `[positions, row_stride]`: magnitudes in [1/16, 6] with random signs (never zero);
/// with `masked`, the last `masked` vocabulary columns are -inf (no target is there, see
/// [`case`]); padding columns past `vocab` are a huge value the kernel must never read.
fn logits<T: Element>(
    rng: &mut StdRng,
    positions: usize,
    layout: LogitsLayout,
    masked: usize,
) -> Vec<T> {
    let mut out = Vec::with_capacity(positions * layout.row_stride);
    for _ in 0..positions {
        for j in 0..layout.row_stride {
            let x = if j >= layout.vocab {
                1.0e4
            } else if j >= layout.vocab - masked {
                f64::NEG_INFINITY
            } else {
                let mag = rng.random_range(1.0 / 16.0..6.0);
                if rng.random_bool(0.5) {
                    mag
                } else {
                    -mag
                }
            };
            out.push(T::from_f64(x));
        }
    }
    out
}

/// The dense `[positions, vocab]` logits the CPU gather takes, as f64.
fn dense(logits: &[impl Element], positions: usize, layout: LogitsLayout) -> Vec<f64> {
    (0..positions)
        .flat_map(|p| {
            logits[p * layout.row_stride..][..layout.vocab]
                .iter()
                .map(|x| x.to_f64())
        })
        .collect()
}

/// Bound on |kernel - f64| for one gathered log-prob, from the kernel's fp32 arithmetic.
/// u = 2^-24 (f32 rounding); e = 2^-21, above the documented error of one exp2_fast (PTX ISA:
/// ex2.approx within 2 ulp of the correctly rounded result, at most 5u = 2^-21.7 relative) and of
/// log2_fast relative to max(1, |log2 x|) (lg2.approx: 2^-22), which the emulator models;
/// `range` bounds |x - max| over a row.
/// - each exp term (and each rescale of a partial sum) carries e, plus the rounding of
///   (x - m) * log2(e) magnified by the exponential: 2u * range, plus the add: u;
/// - a term goes through at most ceil(vocab / threads) serial adds or rescales in its thread and 8
///   merges (5 butterfly levels in the warp, 3 across the 8 warps); all terms are positive, so
///   the sum's relative error is at most steps * (per-step error), and so is ln(sum)'s absolute
///   error, plus log2_fast's e * (|log2 sum| + 1) and the ln 2 scaling (the sum is in
///   [1, vocab]);
/// - (x_t - m) and the final subtraction round once each: 2u * (range + ln vocab).
fn token_tolerance(vocab: usize, range: f64) -> f64 {
    let u = 2f64.powi(-24);
    let e = 2f64.powi(-21);
    let per_step = e + 2.0 * u * range + u;
    let threads = gather_kernel::<f32>().unwrap().info().threads as usize;
    let steps = vocab.div_ceil(threads) as f64 + 8.0;
    // The sum of exp(x - max) is in [1, vocab].
    let log2_sum = (vocab as f64).log2();
    steps * per_step + (e + u) * (log2_sum + 1.0) + 2.0 * u * (range + (vocab as f64).ln())
}

/// Bound for a completion's sum: its tokens' bounds plus the f32 sum (each lane adds
/// ceil(len / 32) values, then 5 butterfly levels): u * (steps + 1) * sum of |values|.
fn sum_tolerance(token_tol: f64, values: &[f64]) -> f64 {
    let u = 2f64.powi(-24);
    let steps = values.len().div_ceil(32) as f64 + 5.0;
    token_tol * values.len() as f64
        + u * (steps + 1.0) * values.iter().map(|v| v.abs()).sum::<f64>()
}

/// Compares the kernels' outputs with the CPU gather of the same values, every element.
fn compare(
    what: &str,
    map: &LogProbMap,
    reference: &[f64],
    vocab: usize,
    per_token: &[f32],
    sums: &[f32],
) {
    let want = map.gather(reference, vocab).unwrap();
    // |x - max| <= max - min over finite values of the whole tensor.
    let finite = reference.iter().filter(|x| x.is_finite());
    let (lo, hi) = finite.fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let tol = token_tolerance(vocab, hi - lo);
    assert_eq!(per_token.len(), want.per_token.len(), "{what}");
    assert_eq!(sums.len(), want.sums.len(), "{what}");
    for (e, (&got, &w)) in per_token.iter().zip(&want.per_token).enumerate() {
        let err = (got as f64 - w).abs();
        assert!(
            err <= tol,
            "{what}: entry {e}: kernel {got:e}, cpu {w:e}, error {err:e} > tolerance {tol:e}"
        );
    }
    for (c, (&got, &w)) in sums.iter().zip(&want.sums).enumerate() {
        let stol = sum_tolerance(tol, want.tokens(c));
        let err = (got as f64 - w).abs();
        assert!(
            err <= stol,
            "{what}: completion {c} sum: kernel {got:e}, cpu {w:e}, error {err:e} > tolerance {stol:e}"
        );
    }
}

/// One batch, one dtype, one layout: the emulated kernels under every schedule, then every
/// element against the CPU gather.
fn case<T: GatherElement>(seed: u64, paired: bool, layout: LogitsLayout, masked: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let vocab_for_tokens = (layout.vocab - masked) as u32;
    let samples = samples(&mut rng, 4, vocab_for_tokens);
    let opts = BatchOptions::new(40);
    let batch = if paired {
        Batch::paired(&samples, &opts)
    } else {
        Batch::shared(&samples, &opts)
    }
    .unwrap();
    let map = batch.log_prob_map();
    let positions = batch.rows() * batch.n();
    let x: Vec<T> = logits(&mut rng, positions, layout, masked);
    let what = format!(
        "{} {} vocab {} stride {} masked {masked} seed {seed:#x}",
        T::NAME,
        if paired { "paired" } else { "shared" },
        layout.vocab,
        layout.row_stride
    );
    let run = EmuLogProbGather::new(map, &x, layout, POISON).unwrap();
    assert_eq!(run.plan().entries(), map.targets().len());
    run.check_schedules(seed ^ 0x5eed)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    compare(
        &what,
        map,
        &dense(&x, positions, layout),
        layout.vocab,
        run.per_token.as_slice(),
        run.sums.as_slice(),
    );
}

fn all_layouts<T: GatherElement>(seed: u64) {
    for (i, paired) in [false, true].into_iter().enumerate() {
        let s = seed + 16 * i as u64;
        case::<T>(s, paired, LogitsLayout::dense(97), 0);
        case::<T>(s + 1, paired, LogitsLayout::dense(1000), 0);
        case::<T>(s + 2, paired, LogitsLayout::padded(1000, 1013), 0);
        case::<T>(s + 3, paired, LogitsLayout::dense(1000), 9);
    }
}

fn bf16_logits_match_the_cpu_gather() {
    all_layouts::<bf16>(0x9a7_0100);
}

fn f16_logits_match_the_cpu_gather() {
    all_layouts::<f16>(0x9a7_0200);
}

fn f32_logits_match_the_cpu_gather() {
    all_layouts::<f32>(0x9a7_0300);
}

/// A row of 3000 with its maximum near the end: every thread rescales its running sum several
/// times (the online max path), still within the bound.
fn rising_logits_exercise_the_online_rescale() {
    let samples = vec![Sample::completions(
        vec![1, 2],
        vec![vec![3, 4, 5], vec![6]],
    )];
    let batch = Batch::shared(&samples, &BatchOptions::new(16)).unwrap();
    let map = batch.log_prob_map();
    let layout = LogitsLayout::dense(3000);
    let positions = batch.rows() * batch.n();
    let x: Vec<f32> = (0..positions * layout.vocab)
        .map(|i| ((i % layout.vocab) as f32 * 0.004 - 5.0) + 0.001 * (i / layout.vocab) as f32)
        .collect();
    let run = EmuLogProbGather::new(map, &x, layout, POISON).unwrap();
    run.check_schedules(11).unwrap();
    let reference: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    compare(
        "rising",
        map,
        &reference,
        layout.vocab,
        run.per_token.as_slice(),
        run.sums.as_slice(),
    );
}

fn bad_inputs_are_typed_errors() {
    let mut rng = StdRng::seed_from_u64(0xbad);
    let samples = samples(&mut rng, 3, 50);
    let batch = Batch::shared(&samples, &BatchOptions::new(40)).unwrap();
    let map = batch.log_prob_map();
    let positions = batch.rows() * batch.n();
    let layout = LogitsLayout::dense(97);
    let x: Vec<f32> = logits(&mut rng, positions, layout, 0);

    let err = |r: Result<EmuLogProbGather<f32>, Error>| r.err().expect("must be an error");
    assert!(matches!(
        err(EmuLogProbGather::new(map, &x[1..], layout, POISON)),
        Error::LengthMismatch { expected, got, .. } if expected == x.len() && got == x.len() - 1
    ));
    assert!(matches!(
        err(EmuLogProbGather::new(
            map,
            &[],
            LogitsLayout::dense(0),
            POISON
        )),
        Error::InvalidArgument { what: "vocab", .. }
    ));
    assert!(matches!(
        err(EmuLogProbGather::new(
            map,
            &x,
            LogitsLayout::padded(97, 96),
            POISON
        )),
        Error::InvalidArgument {
            what: "row_stride",
            ..
        }
    ));
    // A vocabulary that misses a target: the same error (sample, position) as the CPU gather.
    let max_target = *map.targets().iter().max().unwrap() as usize;
    let small = LogitsLayout::dense(max_target);
    let xs: Vec<f32> = logits(&mut rng, positions, small, 0);
    let want = map.gather(&xs, max_target).unwrap_err();
    assert!(matches!(want, Error::TokenOutOfVocab { .. }), "{want}");
    assert_eq!(err(EmuLogProbGather::new(map, &xs, small, POISON)), want);
    // Outputs of the wrong lengths (the GPU path checks them with the plan).
    let plan = LogProbGatherPlan::new(map, x.len(), layout).unwrap();
    plan.check_outputs(plan.entries(), plan.completions())
        .unwrap();
    assert!(matches!(
        plan.check_outputs(plan.entries() + 1, plan.completions()),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        plan.check_outputs(plan.entries(), plan.completions() - 1),
        Err(Error::LengthMismatch { .. })
    ));
}

/// The device against the CPU gather (part of the GPU check; reported as ignored without a
/// device).
fn gpu_gather_matches_the_cpu_gather(gpu: Gpu) {
    // A realistic padded vocabulary as well as the small ones.
    gather_on_device(
        &gpu,
        &[
            LogitsLayout::dense(97),
            LogitsLayout::padded(1000, 1013),
            LogitsLayout::padded(151_936, 152_064),
        ],
    );
}

/// The small vocabularies only, for compute-sanitizer's four tools in scripts/gpucheck/run.sh.
fn gpu_gather_sanitizer_case(gpu: Gpu) {
    gather_on_device(
        &gpu,
        &[LogitsLayout::dense(97), LogitsLayout::padded(1000, 1013)],
    );
}

/// The device gather of bf16 and f32 logits in each layout against the CPU gather, outputs
/// poisoned; a wrong output length refused before any launch.
fn gather_on_device(gpu: &Gpu, layouts: &[LogitsLayout]) {
    let stream = gpu.default_stream();
    let mut rng = StdRng::seed_from_u64(0x9a7_0400);
    for (i, &layout) in layouts.iter().enumerate() {
        let samples = samples(&mut rng, 6, layout.vocab as u32);
        let batch = Batch::shared(&samples, &BatchOptions::new(40)).unwrap();
        let map = batch.log_prob_map();
        let positions = batch.rows() * batch.n();
        let dmap = DeviceLogProbMap::upload(gpu, &stream, map).unwrap();
        let poisoned = |n: usize| stream.clone_htod(&vec![POISON; n]).unwrap();

        // bf16: uploaded as bits, viewed as bf16 on the device.
        let x: Vec<bf16> = logits(&mut rng, positions, layout, 0);
        let bits: Vec<u16> = x.iter().map(|v| v.to_bits()).collect();
        let d_bits = stream.clone_htod(&bits).unwrap();
        // SAFETY: bf16 and u16 have the same size and every bit pattern is a bf16.
        let d_x = unsafe { d_bits.transmute::<bf16>(bits.len()) }.unwrap();
        let mut out = DeviceLogProbs {
            per_token: poisoned(map.targets().len()),
            sums: poisoned(map.completions().len()),
        };
        dmap.gather::<bf16>(&stream, &d_x, layout, &mut out)
            .unwrap();
        let per_token = stream.clone_dtoh(&out.per_token).unwrap();
        let sums = stream.clone_dtoh(&out.sums).unwrap();
        let what = format!("gpu bf16 layout {i}");
        compare(
            &what,
            map,
            &dense(&x, positions, layout),
            layout.vocab,
            &per_token,
            &sums,
        );

        // f32, and a wrong output length is refused before any launch.
        let x: Vec<f32> = logits(&mut rng, positions, layout, 0);
        let d_x = stream.clone_htod(&x).unwrap();
        let mut out = DeviceLogProbs {
            per_token: poisoned(map.targets().len()),
            sums: poisoned(map.completions().len()),
        };
        dmap.gather::<f32>(&stream, &d_x, layout, &mut out).unwrap();
        let per_token = stream.clone_dtoh(&out.per_token).unwrap();
        let sums = stream.clone_dtoh(&out.sums).unwrap();
        let what = format!("gpu f32 layout {i}");
        compare(
            &what,
            map,
            &dense(&x, positions, layout),
            layout.vocab,
            &per_token,
            &sums,
        );
        let mut short = DeviceLogProbs {
            per_token: poisoned(map.targets().len() - 1),
            sums: poisoned(map.completions().len()),
        };
        assert!(matches!(
            dmap.gather::<f32>(&stream, &d_x, layout, &mut short),
            Err(Error::LengthMismatch { .. })
        ));
    }
}
