//! The backward kernels on a real device against the f64 reference, within the same derived
//! bounds as the emulator (tests/support/backward/bounds.rs, docs/backward.md): the forward's
//! matrix and a subset of its edge cases through forward + backward on the device, every
//! registered backward configuration the device runs, head-major views, 2k-token shapes with
//! 32/8 heads (one GQA group checked against the reference), bit-identical repeated runs, and a
//! small case for compute-sanitizer. Every test skips with a printed reason when there is no
//! device (or the crate was built without nvcc), unless `PREFIX_ATTN_REQUIRE_GPU=1` (set by the
//! GPU check), which turns a skip into a failure. The cases are built on the host in every
//! `cargo test` (`device_cases_build_on_the_host`).

use crate::backward_support;
use crate::forward_support;

use libtest_mimic::Trial;
use std::sync::Arc;

use cudarc::driver::{CudaStream, DeviceRepr};
use half::{bf16, f16};
use prefix_attn::attention::{
    Attention, BackwardChoice, BackwardTensors, BackwardWorkspace, DeviceTensors, KernelChoice,
    View,
};
use prefix_attn::cuda::Gpu;
use prefix_attn::plan::Plan;
use prefix_attn::registry::Arch;
use prefix_attn::AttnShape;

use backward_support::check::{bounds, check};
use backward_support::configs;
use backward_support::run::{d_o_for, Outputs};
use forward_support::cases::{matrix, Case, Dtype};
use forward_support::check::{inputs, Inputs, KernelElem, POISON_F32, POISON_U16};
use forward_support::edge::{self, from_layout, strides, to_layout, Edge, Layout};
use forward_support::masks::{causal, prefix_groups};

struct Device {
    gpu: Gpu,
    stream: Arc<CudaStream>,
}

impl Device {
    fn new(gpu: Gpu) -> Device {
        let stream = gpu.default_stream();
        Device { gpu, stream }
    }
}

/// This module's trials (tests/gpu/main.rs runs them).
pub fn trials() -> Vec<Trial> {
    let mut trials = device_tests![
        gpu_backward_matrix_matches_reference,
        gpu_backward_edge_cases_match_reference,
        gpu_backward_is_deterministic,
        gpu_backward_large_shapes_match_reference,
        gpu_backward_sanitizer_case,
    ];
    trials.extend(host_tests![device_cases_build_on_the_host]);
    trials
}

/// Poisoned elements on each side of every output on the device: a write outside a view lands there.
const GUARD: usize = 64;

/// Forward then backward on the device (the backward under `choice`), every tensor in `layout`'s
/// memory order, outputs poisoned and guarded; dense results, or what hit a guard.
fn run_device<T: KernelElem + DeviceRepr>(
    dev: &Device,
    attn: &Attention,
    layout: Layout,
    inp: &Inputs<T>,
    d_o: &[T],
) -> Result<Outputs<T>, String> {
    let s = &dev.stream;
    let sh = &inp.shape;
    let (qh, kvh) = (sh.q_heads, sh.kv_heads);
    let plan = Plan::on_device(inp.vis_end.clone(), s).map_err(|e| e.to_string())?;
    let put =
        |dense: &[T], heads: usize| s.clone_htod(&to_layout(layout, dense, sh, heads)).unwrap();
    let guarded = |len: usize| {
        s.clone_htod(&vec![T::poison(); GUARD + len + GUARD])
            .unwrap()
    };
    let st = |heads: usize| strides(layout, sh, heads);
    let (q, k, v, g_o) = (
        put(&inp.q, qh),
        put(&inp.k, kvh),
        put(&inp.v, kvh),
        put(d_o, qh),
    );
    let (q_len, kv_len, lse_len) = (sh.q_len(), sh.kv_len(), sh.lse_len());
    let mut o = guarded(q_len);
    let mut lse = s
        .clone_htod(&vec![POISON_F32; GUARD + lse_len + GUARD])
        .unwrap();
    let (mut dq, mut dk, mut dv) = (guarded(q_len), guarded(kv_len), guarded(kv_len));
    let mut ws = BackwardWorkspace::new(s, sh).map_err(|e| e.to_string())?;
    attn.forward(
        s,
        &plan,
        sh,
        DeviceTensors {
            q: View::new(q.as_view(), st(qh)),
            k: View::new(k.as_view(), st(kvh)),
            v: View::new(v.as_view(), st(kvh)),
            o: View::new(o.slice_mut(GUARD..GUARD + q_len), st(qh)),
            lse: lse.slice_mut(GUARD..GUARD + lse_len),
        },
        inp.scale,
    )
    .map_err(|e| format!("forward: {e}"))?;
    attn.backward(
        s,
        &plan,
        sh,
        BackwardTensors {
            q: View::new(q.as_view(), st(qh)),
            k: View::new(k.as_view(), st(kvh)),
            v: View::new(v.as_view(), st(kvh)),
            o: View::new(o.slice(GUARD..GUARD + q_len), st(qh)),
            lse: lse.slice(GUARD..GUARD + lse_len),
            d_o: View::new(g_o.as_view(), st(qh)),
            dq: View::new(dq.slice_mut(GUARD..GUARD + q_len), st(qh)),
            dk: View::new(dk.slice_mut(GUARD..GUARD + kv_len), st(kvh)),
            dv: View::new(dv.slice_mut(GUARD..GUARD + kv_len), st(kvh)),
        },
        &mut ws,
        inp.scale,
    )
    .map_err(|e| format!("backward: {e}"))?;
    s.synchronize().map_err(|e| e.to_string())?;
    let back = |name: &str, buf: &cudarc::driver::CudaSlice<T>, len: usize, heads: usize| {
        let all = s.clone_dtoh(buf).unwrap();
        let (head, rest) = all.split_at(GUARD);
        let (body, tail) = rest.split_at(len);
        if !head.iter().chain(tail).all(|x| x.bits() == POISON_U16) {
            return Err(format!("a write outside the {name} view (guard changed)"));
        }
        Ok(from_layout(layout, body, sh, heads))
    };
    let lse_all = s.clone_dtoh(&lse).unwrap();
    Ok(Outputs {
        o: back("o", &o, q_len, qh)?,
        lse: lse_all[GUARD..GUARD + lse_len].to_vec(),
        dq: back("dq", &dq, q_len, qh)?,
        dk: back("dk", &dk, kv_len, kvh)?,
        dv: back("dv", &dv, kv_len, kvh)?,
    })
}

fn attention(dev: &Device, choice: BackwardChoice) -> Attention {
    Attention::with_choices(&dev.gpu, KernelChoice::default(), choice).expect("kernels load")
}

/// The registered backward configurations this device runs (shared memory, path): the sm80
/// ones, and on compute capability 9.0 the sm90a dK/dV and dQ kernels', which no GPU run has
/// checked yet.
fn device_choices(dev: &Device) -> Vec<BackwardChoice> {
    configs::choices(Arch::Sm80)
        .into_iter()
        .chain(configs::choices(Arch::Sm90a))
        .filter(|c| Attention::with_choices(&dev.gpu, KernelChoice::default(), *c).is_ok())
        .collect()
}

fn check_case<T: KernelElem + DeviceRepr>(
    dev: &Device,
    attn: &Attention,
    label: &str,
    layout: Layout,
    inp: &Inputs<T>,
    d_o: &[T],
) -> Result<(), String> {
    let out = run_device(dev, attn, layout, inp, d_o).map_err(|e| format!("{label}: {e}"))?;
    let rf = bounds(inp, d_o);
    let s = check(label, &rf, &out.lse, [&out.dq, &out.dk, &out.dv])?;
    let e = s.grads.map(|g| (g.error, g.bound));
    eprintln!(
        "{label}: dQ {:.2e}/{:.2e} dK {:.2e}/{:.2e} dV {:.2e}/{:.2e}",
        e[0].0, e[0].1, e[1].0, e[1].1, e[2].0, e[2].1
    );
    Ok(())
}

fn matrix_case(
    dev: &Device,
    attn: &Attention,
    case: &Case,
    choice: &BackwardChoice,
) -> Result<(), String> {
    let label = format!("{} [{}]", case.name, configs::name(choice));
    match case.dtype {
        Dtype::Bf16 => {
            let inp = inputs::<bf16>(case);
            check_case(
                dev,
                attn,
                &label,
                Layout::Dense,
                &inp,
                &d_o_for(&inp, case.seed),
            )
        }
        Dtype::F16 => {
            let inp = inputs::<f16>(case);
            check_case(
                dev,
                attn,
                &label,
                Layout::Dense,
                &inp,
                &d_o_for(&inp, case.seed),
            )
        }
    }
}

fn gpu_backward_matrix_matches_reference(gpu: Gpu) {
    let dev = Device::new(gpu);
    let mut failures = Vec::new();
    for choice in device_choices(&dev) {
        let attn = attention(&dev, choice);
        failures.extend(
            matrix()
                .iter()
                .filter_map(|case| matrix_case(&dev, &attn, case, &choice).err()),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn edge_case(dev: &Device, attn: &Attention, e: &Edge) -> Result<(), String> {
    match e.dtype {
        Dtype::Bf16 => {
            let inp = e.inputs::<bf16>();
            check_case(dev, attn, &e.name, e.layout, &inp, &d_o_for(&inp, e.seed))
        }
        Dtype::F16 => {
            let inp = e.inputs::<f16>();
            check_case(dev, attn, &e.name, e.layout, &inp, &d_o_for(&inp, e.seed))
        }
    }
}

/// The emulator's backward edge cases the device runs: every family, one padding-mix seed.
fn device_edge_cases() -> Vec<Edge> {
    let mut cases = edge::random_vis_end_at_tile_boundaries();
    cases.extend(edge::random_vis_end_padding_mixes(0..1));
    cases.extend(edge::tiny_rows_and_padding_tiles());
    cases.extend(edge::large_score_magnitudes());
    cases.extend(edge::tiny_softmax_scales());
    cases.extend(edge::class_checkerboards());
    cases.extend(edge::gqa_8_to_1_and_odd_heads());
    cases.push(edge::head_major_mixed_batch(Dtype::Bf16, 128, 61));
    cases.push(edge::head_major_mixed_batch(Dtype::F16, 64, 62));
    cases
}

fn gpu_backward_edge_cases_match_reference(gpu: Gpu) {
    let dev = Device::new(gpu);
    let attn = attention(&dev, BackwardChoice::default());
    let failures: Vec<String> = device_edge_cases()
        .iter()
        .filter_map(|e| edge_case(&dev, &attn, e).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Repeated runs give bit-identical gradients: dQ has no atomics, dK and dV are summed by one CTA
/// each in a fixed order.
fn gpu_backward_is_deterministic(gpu: Gpu) {
    let dev = Device::new(gpu);
    let e = edge::head_major_large_scores(71);
    let inp = e.inputs::<f16>();
    let d_o = d_o_for(&inp, e.seed);
    for choice in device_choices(&dev) {
        let attn = attention(&dev, choice);
        let first = run_device(&dev, &attn, e.layout, &inp, &d_o).unwrap();
        for run in 1..4 {
            let again = run_device(&dev, &attn, e.layout, &inp, &d_o).unwrap();
            for (name, a, b) in [
                ("dQ", &first.dq, &again.dq),
                ("dK", &first.dk, &again.dk),
                ("dV", &first.dv, &again.dv),
            ] {
                let diff = a.iter().zip(b).position(|(x, y)| x.bits() != y.bits());
                assert_eq!(
                    diff,
                    None,
                    "[{}] {name} differs at run {run}",
                    configs::name(&choice)
                );
            }
        }
    }
}

/// Tokens per row of the large cases: the reference (single-threaded f64, with the bounds'
/// magnitudes) of one GQA group at 2k tokens takes seconds; at 8k, minutes.
const LARGE_N: usize = 2048;
/// The kv head whose q heads are checked against the reference.
const LARGE_CHECKED_GROUP: usize = 5;

/// 2k tokens, 32 q / 8 kv heads: a causal row (bf16, d128) and a shared-prompt row (f16, d64).
fn large_cases() -> Vec<Case> {
    let n = LARGE_N;
    let case = |name, rows, dtype, head_dim| Case {
        name,
        rows,
        q_heads: 32,
        kv_heads: 8,
        head_dim,
        dtype,
        seed: 77,
    };
    vec![
        case(
            "causal 2k, 32/8 heads, d128, bf16",
            vec![causal(n, n)],
            Dtype::Bf16,
            128,
        ),
        case(
            "prompt 1024 + 4 completions of 256 in 2k, 32/8 heads, d64, f16",
            vec![prefix_groups(&[(1024, &[256, 256, 256, 256])], n)],
            Dtype::F16,
            64,
        ),
    ]
}

/// The q heads of kv head `g` (and that kv head) of a dense tensor, as a problem of its own.
fn group_of<T: Copy>(inp: &Inputs<T>, g: usize) -> Inputs<T> {
    let sh = inp.shape;
    let (d, group) = (sh.head_dim, sh.group());
    let sub = AttnShape {
        q_heads: group,
        kv_heads: 1,
        ..sh
    };
    let pick = |x: &[T], heads: usize, first: usize, count: usize| -> Vec<T> {
        let mut out = Vec::with_capacity(sh.rows * sh.n * count * d);
        for t in 0..sh.rows * sh.n {
            out.extend_from_slice(&x[(t * heads + first) * d..(t * heads + first + count) * d]);
        }
        out
    };
    Inputs {
        shape: sub,
        vis_end: inp.vis_end.clone(),
        q: pick(&inp.q, sh.q_heads, g * group, group),
        k: pick(&inp.k, sh.kv_heads, g, 1),
        v: pick(&inp.v, sh.kv_heads, g, 1),
        scale: inp.scale,
    }
}

fn large_case<T: KernelElem + DeviceRepr>(
    dev: &Device,
    attn: &Attention,
    case: &Case,
) -> Result<(), String> {
    let inp = inputs::<T>(case);
    let d_o = d_o_for(&inp, case.seed);
    let out = run_device(dev, attn, Layout::Dense, &inp, &d_o)?;
    let sh = inp.shape;
    let g = LARGE_CHECKED_GROUP;
    let sub = group_of(&inp, g);
    // dO and the gradients of the group's heads, picked like Q and K.
    let d = sh.head_dim;
    let pick = |x: &[T], heads: usize, first: usize, count: usize| -> Vec<T> {
        (0..sh.rows * sh.n)
            .flat_map(|t| x[(t * heads + first) * d..(t * heads + first + count) * d].to_vec())
            .collect()
    };
    let group = sh.group();
    let sub_d_o = pick(&d_o, sh.q_heads, g * group, group);
    let rf = bounds(&sub, &sub_d_o);
    let lse: Vec<f32> = (0..sh.rows)
        .flat_map(|r| {
            out.lse[(r * sh.q_heads + g * group) * sh.n..(r * sh.q_heads + (g + 1) * group) * sh.n]
                .to_vec()
        })
        .collect();
    let got = [
        pick(&out.dq, sh.q_heads, g * group, group),
        pick(&out.dk, sh.kv_heads, g, 1),
        pick(&out.dv, sh.kv_heads, g, 1),
    ];
    check(case.name, &rf, &lse, [&got[0], &got[1], &got[2]])?;
    // Every head: finite everywhere (the poison is NaN).
    for (name, x) in [("dQ", &out.dq), ("dK", &out.dk), ("dV", &out.dv)] {
        if let Some(i) = x.iter().position(|v| !v.to_f64().is_finite()) {
            return Err(format!(
                "{}: {name}[{i}] not written or not finite",
                case.name
            ));
        }
    }
    Ok(())
}

fn gpu_backward_large_shapes_match_reference(gpu: Gpu) {
    let dev = Device::new(gpu);
    let attn = attention(&dev, BackwardChoice::default());
    let failures: Vec<String> = large_cases()
        .iter()
        .filter_map(|c| match c.dtype {
            Dtype::Bf16 => large_case::<bf16>(&dev, &attn, c).err(),
            Dtype::F16 => large_case::<f16>(&dev, &attn, c).err(),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Two small cases for compute-sanitizer's four tools in the GPU check, with the default kernels
/// and, on compute capability 9.0, the chosen-only sm90a ones.
fn gpu_backward_sanitizer_case(gpu: Gpu) {
    let dev = Device::new(gpu);
    let sm90a = BackwardChoice {
        arch: Some(Arch::Sm90a),
        ..BackwardChoice::default()
    };
    let all = matrix();
    for choice in [BackwardChoice::default(), sm90a] {
        let Ok(attn) = Attention::with_choices(&dev.gpu, KernelChoice::default(), choice) else {
            println!("sanitizer case: {choice:?} does not run on this device; skipped");
            continue;
        };
        for case in [&all[7], &all[4]] {
            matrix_case(&dev, &attn, case, &choice).unwrap();
        }
    }
}

/// Everything the device tests run is built on the host in every `cargo test`: shapes valid,
/// plans built, the large cases' layouts fill their rows, the checked group's sub-problem is the
/// full problem restricted to it.
fn device_cases_build_on_the_host() {
    for e in device_edge_cases() {
        e.shape()
            .validate()
            .unwrap_or_else(|err| panic!("{}: {err}", e.name));
        Plan::new(e.inputs::<f16>().vis_end).unwrap_or_else(|err| panic!("{}: {err}", e.name));
    }
    for c in matrix().iter().chain(&large_cases()) {
        let inp = inputs::<f16>(c);
        inp.shape.validate().unwrap();
        Plan::new(inp.vis_end.clone()).unwrap();
    }
    for c in large_cases() {
        assert_eq!(c.rows[0].len(), LARGE_N, "{}", c.name);
        let inp = inputs::<bf16>(&c);
        let sub = group_of(&inp, LARGE_CHECKED_GROUP);
        let (d, group) = (inp.shape.head_dim, inp.shape.group());
        let t = 1000; // a token: its q heads g*group.. and kv head g
        let q0 = (t * inp.shape.q_heads + LARGE_CHECKED_GROUP * group) * d;
        assert_eq!(
            &sub.q[t * group * d..(t + 1) * group * d],
            &inp.q[q0..q0 + group * d]
        );
        let k0 = (t * inp.shape.kv_heads + LARGE_CHECKED_GROUP) * d;
        assert_eq!(&sub.k[t * d..(t + 1) * d], &inp.k[k0..k0 + d]);
    }
}
