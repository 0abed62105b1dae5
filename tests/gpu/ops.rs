//! The SwiGLU and rotary kernels (csrc/kernels/swiglu.cuh, rotary.cuh) on a real device, through
//! their device entries (`Swiglu::run`, `Rotary::run`), against the f64 reference within the
//! bounds derived in tests/support/ops.rs (the emulator tests use the same): every element
//! checked, outputs poisoned, guards on both sides of every written view, the gaps of a strided
//! output and the V heads of a fused QKV buffer required untouched. SwiGLU runs one problem
//! larger than a launch's capped grid covers, so its grid-stride loop turns more than once.
//! A small case of each is in the compute-sanitizer step of the GPU check.

use crate::forward_support::check::KernelElem;
use crate::on_threads::failures_on_threads;
use crate::ops_support::{check_swiglu, random, swiglu_inputs, ulp, RotaryCheck, U};

use libtest_mimic::Trial;

use half::{bf16, f16};
use prefix_attn::cuda::Gpu;
use prefix_attn::layout::RowBuilder;
use prefix_attn::ops::rotary::{Rotary, RotaryShape};
use prefix_attn::ops::swiglu::{Swiglu, SwigluShape};
use prefix_attn::ops::LayerDtype;
use prefix_attn::reference;
use prefix_attn::rotary::{RotaryDirection, RotaryTable, DEFAULT_THETA};

/// This module's trials (tests/gpu/main.rs runs them).
pub fn trials() -> Vec<Trial> {
    let mut trials = device_tests![
        gpu_swiglu_matches_the_reference,
        gpu_rotary_matches_the_reference,
        gpu_ops_sanitizer_case,
    ];
    trials.extend(host_tests![the_checks_refuse_a_wrong_element]);
    trials
}

/// Poisoned elements on each side of every written view: a write outside it lands there.
const GUARD: usize = 64;

/// The SwiGLU launch's grid cap (src/ops/swiglu.rs) times its threads per CTA: vectors of 8
/// elements that one turn of the grid-stride loop covers.
const SWIGLU_VECTORS_PER_TURN: usize = 65_535 * 256;

/// Indices in `v` whose bits are not `T::poison()`'s, as a message.
fn written<T: KernelElem>(what: &str, v: &[T], offset: usize) -> Result<(), String> {
    match v.iter().position(|x| x.bits() != T::poison().bits()) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{} {what}: element {} written",
            <T as reference::Element>::NAME,
            offset + i
        )),
    }
}

/// SwiGLU on the device: the fused gate|up buffer of a GEMM, `out` with row stride `out_stride`
/// (>= ffn) inside guards; every element checked, the gaps and guards left poisoned.
fn swiglu_on_device<T: LayerDtype + KernelElem>(
    gpu: &Gpu,
    tokens: usize,
    ffn: usize,
    out_stride: usize,
    seed: u64,
) -> Result<(), String> {
    let stream = gpu.default_stream();
    let swiglu = Swiglu::new(gpu).map_err(|e| e.to_string())?;
    let gu: Vec<T> = swiglu_inputs(tokens, ffn, seed);
    let d_gu = stream.clone_htod(&gu).map_err(|e| e.to_string())?;
    let len = tokens * out_stride;
    let mut d_out = stream
        .clone_htod(&vec![T::poison(); GUARD + len + GUARD])
        .map_err(|e| e.to_string())?;
    let shape = SwigluShape {
        out_stride,
        ..SwigluShape::fused(tokens, ffn)
    };
    {
        let (gate, up) = (d_gu.slice(..), d_gu.slice(ffn..));
        let mut out = d_out.slice_mut(GUARD..GUARD + len);
        swiglu
            .run(&stream, &shape, &gate, &up, &mut out)
            .map_err(|e| e.to_string())?;
    }
    let out = stream.clone_dtoh(&d_out).map_err(|e| e.to_string())?;
    written("swiglu guard before", &out[..GUARD], 0)?;
    written("swiglu guard after", &out[GUARD + len..], GUARD + len)?;
    let body = &out[GUARD..GUARD + len];
    for t in 0..tokens {
        let gap = &body[t * out_stride + ffn..(t + 1) * out_stride];
        written(&format!("swiglu gap of row {t}"), gap, t * out_stride + ffn)?;
    }
    // Every element, on every core (the large case holds over 10^8).
    check_swiglu_on_cores(&gu, tokens, ffn, body, out_stride)
}

/// [`check_swiglu`] over blocks of rows, one block per core (tests/support/on_threads.rs), each
/// failure naming its block's first row (its row indices count from there).
fn check_swiglu_on_cores<T: LayerDtype>(
    gu: &[T],
    tokens: usize,
    ffn: usize,
    out: &[T],
    out_stride: usize,
) -> Result<(), String> {
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
    let rows = tokens.div_ceil(threads);
    let starts: Vec<usize> = (0..tokens).step_by(rows).collect();
    let failures = failures_on_threads(
        &starts,
        |t0| format!("the block from row {t0} (rows counted from it)"),
        |t0| {
            let t1 = (t0 + rows).min(tokens);
            let (gate_up, block) = (&gu[t0 * 2 * ffn..t1 * 2 * ffn], &out[t0 * out_stride..]);
            check_swiglu(gate_up, t1 - t0, ffn, block, out_stride).unwrap();
        },
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

fn gpu_swiglu_matches_the_reference(gpu: Gpu) {
    // Over 2^27 elements: more 8-element vectors than one turn of the capped grid covers.
    let (tokens, ffn) = (32_769, 4_104);
    assert!(tokens * ffn / 8 > SWIGLU_VECTORS_PER_TURN);
    swiglu_on_device::<bf16>(&gpu, tokens, ffn, ffn + 8, 11).unwrap();
    // A ragged token count, a dense output.
    swiglu_on_device::<f16>(&gpu, 1_001, 2_056, 2_056, 12).unwrap();
}

/// Position ids of one packed row: prompts shared by k completions, documents, padding at the end.
fn positions(n: usize, prompt: usize) -> Vec<i32> {
    let mut row = RowBuilder::new();
    while row.len() + prompt * 3 < n {
        row.prefix_completions(prompt, &[prompt / 2, prompt / 3 + 7, prompt / 4 + 1])
            .unwrap();
        row.document(prompt / 5 + 3).unwrap();
    }
    row.finish(n).unwrap().positions().to_vec()
}

/// Rotary in place on the device, forward then inverse from the same input: a fused QKV buffer
/// (Q and K turn, V stays) inside guards, every element checked.
fn rotary_on_device<T: LayerDtype + KernelElem>(
    gpu: &Gpu,
    positions: &[i32],
    (q_heads, kv_heads, d): (usize, usize, usize),
    seed: u64,
) -> Result<(), String> {
    let stream = gpu.default_stream();
    let err = |e: prefix_attn::Error| e.to_string();
    let table = RotaryTable::for_positions(d, positions, DEFAULT_THETA).map_err(err)?;
    let rotary = Rotary::new(gpu, &stream, table).map_err(err)?;
    let ids = rotary.upload_positions(&stream, positions).map_err(err)?;
    let width = (q_heads + 2 * kv_heads) * d;
    let x: Vec<T> = random(positions.len() * width, -2.0, 2.0, seed);
    let mut guarded = vec![T::poison(); GUARD];
    guarded.extend_from_slice(&x);
    guarded.extend(std::iter::repeat_n(T::poison(), GUARD));
    let shape = RotaryShape {
        tokens: positions.len(),
        heads: q_heads + kv_heads,
        head_dim: d,
        token_stride: width,
    };
    for direction in [RotaryDirection::Forward, RotaryDirection::Inverse] {
        let mut d_x = stream.clone_htod(&guarded).map_err(|e| e.to_string())?;
        rotary
            .run(
                &stream,
                &shape,
                &mut d_x.slice_mut(GUARD..GUARD + x.len()),
                &ids,
                direction,
            )
            .map_err(err)?;
        let out = stream.clone_dtoh(&d_x).map_err(|e| e.to_string())?;
        written("rotary guard before", &out[..GUARD], 0)?;
        written(
            "rotary guard after",
            &out[GUARD + x.len()..],
            GUARD + x.len(),
        )?;
        RotaryCheck {
            input: &x,
            positions,
            turned: q_heads + kv_heads,
            head_dim: d,
            width,
        }
        .check(&out[GUARD..GUARD + x.len()], direction)?;
    }
    Ok(())
}

fn gpu_rotary_matches_the_reference(gpu: Gpu) {
    // A training row: 8k tokens, 32 query and 8 key/value heads of 128; positions up to the
    // longest prompt + completion.
    rotary_on_device::<bf16>(&gpu, &positions(8_192, 700), (32, 8, 128), 21).unwrap();
    rotary_on_device::<f16>(&gpu, &positions(3_001, 200), (8, 2, 64), 22).unwrap();
}

/// One small case of each kernel for compute-sanitizer in scripts/gpucheck/run.sh.
fn gpu_ops_sanitizer_case(gpu: Gpu) {
    swiglu_on_device::<bf16>(&gpu, 33, 48, 56, 31).unwrap();
    rotary_on_device::<f16>(&gpu, &positions(40, 9), (4, 2, 32), 32).unwrap();
}

/// The checks the device tests rely on pass the reference rounded to the output type and refuse
/// an element two ulps away, a NaN, and changed V heads (so a wrong kernel cannot pass).
fn the_checks_refuse_a_wrong_element() {
    let (tokens, ffn) = (3, 16);
    let gu: Vec<bf16> = swiglu_inputs(tokens, ffn, 5);
    let mut out: Vec<bf16> = (0..tokens * ffn)
        .map(|e| {
            let (t, f) = (e / ffn, e % ffn);
            let (g, u) = (
                gu[t * 2 * ffn + f].to_f64(),
                gu[t * 2 * ffn + ffn + f].to_f64(),
            );
            bf16::from_f64(reference::swiglu(g, u))
        })
        .collect();
    check_swiglu(&gu, tokens, ffn, &out, ffn).unwrap();
    check_swiglu_on_cores(&gu, tokens, ffn, &out, ffn).unwrap();
    let e = 2 * ffn + 7;
    let v = out[e].to_f64();
    out[e] = bf16::from_f64(v + 2.0 * ulp::<bf16>(v) + 16.0 * U * v.abs());
    assert!(check_swiglu(&gu, tokens, ffn, &out, ffn).is_err());
    // The per-core check reports through panics caught on its threads: the two "panicked at"
    // lines this test prints are those refusals.
    let on_cores = check_swiglu_on_cores(&gu, tokens, ffn, &out, ffn).unwrap_err();
    assert!(
        on_cores.contains("from row 2") && on_cores.contains("[0, 7]"),
        "{on_cores}"
    );
    out[e] = bf16::NAN;
    assert!(check_swiglu(&gu, tokens, ffn, &out, ffn).is_err());
    assert!(check_swiglu_on_cores(&gu, tokens, ffn, &out, ffn).is_err());

    let positions = positions(24, 5);
    let (heads, d, width) = (2, 16, 48); // two turned heads, one V head
    let x: Vec<f16> = random(positions.len() * width, -2.0, 2.0, 6);
    let check = RotaryCheck {
        input: &x,
        positions: &positions,
        turned: heads,
        head_dim: d,
        width,
    };
    let turned = reference::rotary(
        &x.chunks_exact(width)
            .flat_map(|t| t[..heads * d].iter().copied())
            .collect::<Vec<_>>(),
        heads,
        d,
        &positions,
        DEFAULT_THETA,
        RotaryDirection::Forward,
    )
    .unwrap();
    let mut out = x.clone();
    for (t, row) in out.chunks_exact_mut(width).enumerate() {
        for (o, w) in row[..heads * d].iter_mut().zip(&turned[t * heads * d..]) {
            *o = f16::from_f64(*w);
        }
    }
    check.check(&out, RotaryDirection::Forward).unwrap();
    assert!(
        check.check(&out, RotaryDirection::Inverse).is_err(),
        "the other direction"
    );
    let mut wrong = out.clone();
    let e = width + 3; // token 1, head 0, element 3
    let v = wrong[e].to_f64();
    wrong[e] = f16::from_f64(v + 3.0 * ulp::<f16>(v) + 8.0 * U * 4.0);
    assert!(check.check(&wrong, RotaryDirection::Forward).is_err());
    let mut v_changed = out;
    v_changed[2 * width + heads * d + 1] = f16::from_f64(9.0);
    assert!(check.check(&v_changed, RotaryDirection::Forward).is_err());
}
