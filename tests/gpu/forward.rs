//! The forward kernels on a real device against the f64 reference: the emulator matrix, a subset
//! of the emulator's edge cases (tests/support/forward/edge.rs: arbitrary `vis_end`, tile-boundary
//! lengths, padding tiles, large scores, tiny scales, checkerboards, GQA 8:1, head-major views),
//! large shapes (8k tokens, 32 query heads over 8 kv heads) and strided views, every element
//! within its device bound (`prefix_attn::bounds` with `Arith::Device`: the PTX ISA's latitude for
//! mma and documented error of ex2 / lg2.approx). Without a device (or in a build without nvcc)
//! every device test is reported as ignored with the reason, unless `PREFIX_ATTN_REQUIRE_GPU=1`
//! (set by scripts/gpucheck/run.sh) makes it a failure (tests/support/device_harness.rs). The host-side tests
//! of the cases run everywhere.

use crate::forward_support;

use libtest_mimic::Trial;
use std::sync::Arc;

use cudarc::driver::{CudaStream, DeviceRepr};
use half::{bf16, f16};
use prefix_attn::attention::configs::tile_shape;
use prefix_attn::attention::{DeviceTensors, Forward, KernelChoice, View};
use prefix_attn::bounds::Arith;
use prefix_attn::cuda::Gpu;
use prefix_attn::mask::{TileShape, VisEnd};
use prefix_attn::plan::Plan;
use prefix_attn::reference::Element;
use prefix_attn::registry::{Arch, KernelDtype};
use prefix_attn::AttnShape;

use forward_support::cases::{matrix, Case, Dtype};
use forward_support::check::{check, inputs, Inputs, KernelElem, POISON_F32, POISON_U16};
use forward_support::configs::{self, plan_for_all};
use forward_support::edge::{self, from_layout, strides, to_layout, Edge, Layout};
use forward_support::fused::Fused;
use forward_support::masks::{causal, prefix_groups};

struct Device {
    gpu: Gpu,
    fwd: Forward,
    stream: Arc<CudaStream>,
}

/// This module's trials (tests/gpu/main.rs runs them).
pub fn trials() -> Vec<Trial> {
    let mut trials = device_tests![
        gpu_matrix_matches_reference,
        gpu_every_config_matches_reference,
        gpu_is_deterministic,
        gpu_edge_cases_match_reference,
        gpu_edge_head_major_is_deterministic,
        gpu_large_shapes_match_reference,
        gpu_strided_views_match_dense,
        gpu_sanitizer_case,
    ];
    trials.extend(host_tests![
        large_cases_build_and_fit,
        sub_heads_reference_equals_the_full_reference,
        device_edge_cases_build,
    ]);
    trials
}

impl Device {
    fn new(gpu: Gpu) -> Device {
        Self::with_choice(gpu, KernelChoice::default())
    }

    fn with_choice(gpu: Gpu, choice: KernelChoice) -> Device {
        let fwd = Forward::with_choice(&gpu, choice).expect("forward kernels load");
        let stream = gpu.default_stream();
        Device { gpu, fwd, stream }
    }

    /// The block-list tile of the kernel this device's Forward runs for a dtype and head dim.
    fn tile(&self, dtype: Dtype, head_dim: usize) -> TileShape {
        let d = match dtype {
            Dtype::Bf16 => KernelDtype::Bf16,
            Dtype::F16 => KernelDtype::F16,
        };
        let k = self
            .fwd
            .kernel_for(d, head_dim)
            .expect("a forward kernel for the case");
        tile_shape(k.tile.expect("forward kernels have tiles"))
    }
}

/// Poisoned elements on each side of O and LSE on the device: a write outside a view lands there.
const GUARD: usize = 64;

/// Runs the forward with Q, K, V and O in `layout`'s memory order (the inputs are dense and
/// converted), outputs poisoned and guarded; returns dense O and LSE, or what hit a guard.
fn run_in_layout<T: KernelElem + DeviceRepr>(
    dev: &Device,
    layout: Layout,
    inp: &Inputs<T>,
) -> Result<(Vec<T>, Vec<f32>), String> {
    let s = &dev.stream;
    let sh = &inp.shape;
    let (q_len, lse_len) = (sh.q_len(), sh.lse_len());
    // Block lists at every registered forward tile: the device may run any configuration.
    let mut plan = plan_for_all(inp.vis_end.clone());
    plan.upload(s).unwrap();
    let put =
        |dense: &[T], heads: usize| s.clone_htod(&to_layout(layout, dense, sh, heads)).unwrap();
    let (q, k, v) = (
        put(&inp.q, sh.q_heads),
        put(&inp.k, sh.kv_heads),
        put(&inp.v, sh.kv_heads),
    );
    let mut o = s
        .clone_htod(&vec![T::poison(); GUARD + q_len + GUARD])
        .unwrap();
    let mut lse = s
        .clone_htod(&vec![POISON_F32; GUARD + lse_len + GUARD])
        .unwrap();
    dev.fwd
        .run(
            s,
            &plan,
            sh,
            DeviceTensors {
                q: View::new(q.as_view(), strides(layout, sh, sh.q_heads)),
                k: View::new(k.as_view(), strides(layout, sh, sh.kv_heads)),
                v: View::new(v.as_view(), strides(layout, sh, sh.kv_heads)),
                o: View::new(
                    o.slice_mut(GUARD..GUARD + q_len),
                    strides(layout, sh, sh.q_heads),
                ),
                lse: lse.slice_mut(GUARD..GUARD + lse_len),
            },
            inp.scale,
        )
        .unwrap();
    s.synchronize().unwrap();
    let o = s.clone_dtoh(&o).unwrap();
    let lse = s.clone_dtoh(&lse).unwrap();
    let (o_head, o_body) = o.split_at(GUARD);
    let (o_body, o_tail) = o_body.split_at(q_len);
    let (l_head, l_body) = lse.split_at(GUARD);
    let (l_body, l_tail) = l_body.split_at(lse_len);
    if !o_head.iter().chain(o_tail).all(|x| x.bits() == POISON_U16) {
        return Err("a write outside the O view (guard changed)".into());
    }
    if !l_head
        .iter()
        .chain(l_tail)
        .all(|x| x.to_bits() == POISON_F32.to_bits())
    {
        return Err("a write outside LSE (guard changed)".into());
    }
    Ok((from_layout(layout, o_body, sh, sh.q_heads), l_body.to_vec()))
}

/// Runs the forward on dense copies of `inp` with poisoned, guarded outputs; returns O and LSE.
fn run_dense<T: KernelElem + DeviceRepr>(dev: &Device, inp: &Inputs<T>) -> (Vec<T>, Vec<f32>) {
    run_in_layout(dev, Layout::Dense, inp).unwrap_or_else(|e| panic!("{e}"))
}

fn run_case<T: KernelElem + DeviceRepr>(dev: &Device, case: &Case) -> Result<(), String> {
    let inp = inputs::<T>(case);
    let (o, lse) = run_dense(dev, &inp);
    check(
        case.name,
        case.dtype,
        &inp,
        &o,
        &lse,
        Arith::Device,
        dev.tile(case.dtype, inp.shape.head_dim),
    )
}

fn run_matrix(dev: &Device) -> Vec<String> {
    matrix()
        .iter()
        .filter(|case| dev.fwd.kernel_for(KernelDtype::Bf16, case.head_dim).is_ok())
        .filter_map(|case| {
            match case.dtype {
                Dtype::Bf16 => run_case::<bf16>(dev, case),
                Dtype::F16 => run_case::<f16>(dev, case),
            }
            .err()
        })
        .collect()
}

fn gpu_matrix_matches_reference(gpu: Gpu) {
    let failures = run_matrix(&Device::new(gpu));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The matrix under every registered forward configuration this device runs, on every path
/// (the default picks run the other tests).
fn gpu_every_config_matches_reference(gpu: Gpu) {
    let mut failures = Vec::new();
    let mut ran = 0;
    for arch in [Arch::Sm80, Arch::Sm90a] {
        for choice in configs::choices(arch) {
            let Ok(fwd) = Forward::with_choice(&gpu, choice) else {
                continue; // not for this device (path or shared memory)
            };
            drop(fwd);
            ran += 1;
            let dev = Device::with_choice(Gpu::new(0).expect("the same device"), choice);
            failures.extend(
                run_matrix(&dev)
                    .into_iter()
                    .map(|f| format!("[{}] {f}", configs::name(&choice))),
            );
        }
    }
    assert!(ran > 0, "no forward configuration runs on this device");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Repeated launches give bit-identical results (no races between CTAs or warps).
fn gpu_is_deterministic(gpu: Gpu) {
    let dev = Device::new(gpu);
    let case = &matrix()[2];
    let inp = inputs::<bf16>(case);
    let first = run_dense(&dev, &inp);
    for _ in 0..3 {
        let again = run_dense(&dev, &inp);
        assert!(first
            .0
            .iter()
            .zip(&again.0)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(first
            .1
            .iter()
            .zip(&again.1)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

fn run_edge<T: KernelElem + DeviceRepr>(dev: &Device, e: &Edge) -> Result<(), String> {
    let inp = e.inputs::<T>();
    let (o, lse) =
        run_in_layout(dev, e.layout, &inp).map_err(|err| format!("{}: {err}", e.name))?;
    check(
        &e.name,
        e.dtype,
        &inp,
        &o,
        &lse,
        Arith::Device,
        dev.tile(e.dtype, inp.shape.head_dim),
    )
}

/// The emulator's edge cases (tests/forward/edge_cases.rs runs all 26) on the device, 23 of them:
/// every family, every case except three of the four extra padding-mix seeds (kept: the one
/// with the most padding). Each is at most 4 rows of n <= 256, so the device time is launches
/// and the f64 reference of these small shapes (well under a second in release).
fn device_edge_cases() -> Vec<Edge> {
    let mut cases = edge::random_vis_end_at_tile_boundaries();
    cases.extend(edge::random_vis_end_padding_mixes(3..4));
    cases.extend(edge::tiny_rows_and_padding_tiles());
    cases.extend(edge::large_score_magnitudes());
    cases.extend(edge::tiny_softmax_scales());
    cases.extend(edge::class_checkerboards());
    cases.extend(edge::gqa_8_to_1_and_odd_heads());
    cases.push(edge::head_major_mixed_batch(Dtype::Bf16, 64, 61));
    cases.push(edge::head_major_mixed_batch(Dtype::F16, 128, 62));
    cases
}

/// The edge cases on the device against the f64 reference, within the device bounds and
/// checks (every element, exact 0 / -inf for queries that see no key) and guarded outputs.
fn gpu_edge_cases_match_reference(gpu: Gpu) {
    let dev = Device::new(gpu);
    edge::run_all(
        &device_edge_cases(),
        |e| run_edge::<bf16>(&dev, e),
        |e| run_edge::<f16>(&dev, e),
    );
}

/// Head-major views, mixed rows and large scores (the emulator's race probe) give bit-identical
/// results over repeated launches, and match the reference.
fn gpu_edge_head_major_is_deterministic(gpu: Gpu) {
    let dev = Device::new(gpu);
    let e = edge::head_major_large_scores(71);
    let inp = e.inputs::<f16>();
    let (o, lse) = run_in_layout(&dev, e.layout, &inp).unwrap();
    check(
        &e.name,
        e.dtype,
        &inp,
        &o,
        &lse,
        Arith::Device,
        dev.tile(e.dtype, inp.shape.head_dim),
    )
    .unwrap();
    for launch in 1..4 {
        let (again_o, again_lse) = run_in_layout(&dev, e.layout, &inp).unwrap();
        let o_diff = o
            .iter()
            .zip(&again_o)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(o_diff, None, "O differs at launch {launch}");
        let lse_diff = lse
            .iter()
            .zip(&again_lse)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(lse_diff, None, "LSE differs at launch {launch}");
    }
}

/// The reference of two q heads of a large GQA problem: head `h` with its kv head, as a small
/// dense problem of its own (the reference cost of all 32 heads at 8k tokens is too high).
fn sub_heads<T: Element + Copy>(inp: &Inputs<T>, heads: &[usize]) -> (Inputs<T>, Vec<usize>) {
    let sh = &inp.shape;
    let d = sh.head_dim;
    let sub = AttnShape {
        q_heads: heads.len(),
        kv_heads: heads.len(),
        ..*sh
    };
    let mut q = Vec::with_capacity(sub.q_len());
    let mut k = Vec::with_capacity(sub.kv_len());
    let mut v = Vec::with_capacity(sub.kv_len());
    for r in 0..sh.rows {
        for i in 0..sh.n {
            for &h in heads {
                let g = h / sh.group();
                let qa = ((r * sh.n + i) * sh.q_heads + h) * d;
                let ka = ((r * sh.n + i) * sh.kv_heads + g) * d;
                q.extend_from_slice(&inp.q[qa..qa + d]);
                k.extend_from_slice(&inp.k[ka..ka + d]);
                v.extend_from_slice(&inp.v[ka..ka + d]);
            }
        }
    }
    (
        Inputs {
            shape: sub,
            vis_end: inp.vis_end.clone(),
            q,
            k,
            v,
            scale: inp.scale,
        },
        heads.to_vec(),
    )
}

/// Query heads of a large case that are checked against the reference (first, middle, last).
const LARGE_CHECKED_HEADS: [usize; 3] = [0, 13, 31];
/// Tokens per row of the large cases.
const LARGE_N: usize = 8192;

/// The large shapes the device runs: 8k tokens, 32 q / 8 kv heads. Built on the host by
/// `large_cases_build_and_fit` in every `cargo test`, so a layout that does not fit its row
/// fails there, not on the device.
fn large_cases() -> Vec<Case> {
    let n = LARGE_N;
    // 8 groups of 480 + 524 tokens = 8032, then 160 padding tokens (the layout must fit n).
    let groups: Vec<(usize, &[usize])> = (0..8)
        .map(|_| (480usize, &[128usize, 96, 160, 140][..]))
        .collect();
    let case = |name, rows, dtype, head_dim| Case {
        name,
        rows,
        q_heads: 32,
        kv_heads: 8,
        head_dim,
        dtype,
        seed: 99,
    };
    vec![
        case(
            "causal 8k, 32/8 heads, d128, bf16",
            vec![causal(n, n)],
            Dtype::Bf16,
            128,
        ),
        case(
            "prefix + 4 completions x 8 groups in 8k, 32/8 heads, d64, f16",
            vec![prefix_groups(&groups, n)],
            Dtype::F16,
            64,
        ),
    ]
}

/// Dense O `[rows, n, heads.len(), d]` and LSE `[rows, heads.len(), n]` of the query heads
/// `heads` of a full dense O and LSE of shape `sh`: the layout of the [`sub_heads`] problem.
fn pick_heads<T: Copy, L: Copy>(
    sh: &AttnShape,
    o: &[T],
    lse: &[L],
    heads: &[usize],
) -> (Vec<T>, Vec<L>) {
    let d = sh.head_dim;
    let mut so = Vec::with_capacity(sh.rows * sh.n * heads.len() * d);
    let mut sl = Vec::with_capacity(sh.rows * heads.len() * sh.n);
    for r in 0..sh.rows {
        for i in 0..sh.n {
            for &h in heads {
                let a = ((r * sh.n + i) * sh.q_heads + h) * d;
                so.extend_from_slice(&o[a..a + d]);
            }
        }
        for &h in heads {
            let a = (r * sh.q_heads + h) * sh.n;
            sl.extend_from_slice(&lse[a..a + sh.n]);
        }
    }
    (so, sl)
}

fn large_case<T: KernelElem + DeviceRepr>(dev: &Device, case: &Case) {
    let name = case.name;
    let inp = inputs::<T>(case);
    let (o, lse) = run_dense(dev, &inp);
    let (sub, heads) = sub_heads(&inp, &LARGE_CHECKED_HEADS);
    let (so, sl) = pick_heads(&inp.shape, &o, &lse, &heads);
    // Every element of the full outputs was written.
    assert!(
        o.iter().all(|x| x.to_f64().is_finite()),
        "{name}: an O element was not written"
    );
    assert!(
        lse.iter().all(|x| !x.is_nan()),
        "{name}: an LSE element was not written"
    );
    check(
        name,
        case.dtype,
        &sub,
        &so,
        &sl,
        Arith::Device,
        dev.tile(case.dtype, sub.shape.head_dim),
    )
    .unwrap();
}

fn gpu_large_shapes_match_reference(gpu: Gpu) {
    let dev = Device::new(gpu);
    for case in large_cases() {
        match case.dtype {
            Dtype::Bf16 => large_case::<bf16>(&dev, &case),
            Dtype::F16 => large_case::<f16>(&dev, &case),
        }
    }
}

/// Host side of `gpu_large_shapes_match_reference`, in every `cargo test`: each large case's
/// rows are valid at n = 8k (the row builders refuse a layout longer than its row), the shape
/// validates, the plan builds and the checked heads exist. Inputs and the reference (seconds at
/// 8k) are left to the device run.
fn large_cases_build_and_fit() {
    let cases = large_cases();
    assert_eq!(cases.len(), 2);
    for case in &cases {
        assert!(
            case.rows.iter().all(|r| r.len() == LARGE_N),
            "{}",
            case.name
        );
        let vis_end = VisEnd::from_rows(&case.rows).expect("valid large case");
        let shape = AttnShape {
            rows: case.rows.len(),
            n: case.n(),
            q_heads: case.q_heads,
            kv_heads: case.kv_heads,
            head_dim: case.head_dim,
        };
        shape.validate().expect("valid large shape");
        let plan = Plan::new(vis_end).expect("plan of a large case");
        assert!(plan
            .tiles()
            .iter()
            .all(|&t| plan.mask(t).unwrap().n() == LARGE_N));
        assert!(LARGE_CHECKED_HEADS.iter().all(|&h| h < shape.q_heads));
    }
}

/// [`sub_heads`] + [`pick_heads`] (how the large cases are checked) on a small GQA case: the
/// reference of the sub-problem equals the full reference at the picked heads.
fn sub_heads_reference_equals_the_full_reference() {
    let case = &matrix()[1]; // gqa 4, d128, ragged n = 200
    let inp = inputs::<f16>(case);
    let sh = inp.shape;
    let full = prefix_attn::reference::forward(
        &sh,
        &inp.vis_end,
        &inp.q,
        &inp.k,
        &inp.v,
        f64::from(inp.scale),
    )
    .unwrap();
    let heads = [0, 2, 3];
    let (sub, picked) = sub_heads(&inp, &heads);
    let part = prefix_attn::reference::forward(
        &sub.shape,
        &sub.vis_end,
        &sub.q,
        &sub.k,
        &sub.v,
        f64::from(sub.scale),
    )
    .unwrap();
    let (want_o, want_lse) = pick_heads(&sh, &full.o, &full.lse, &picked);
    assert_eq!(part.o.len(), want_o.len());
    for (i, (a, b)) in part.o.iter().zip(&want_o).enumerate() {
        assert!(
            (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
            "O[{i}]: {a} vs {b}"
        );
    }
    assert_eq!(part.lse.len(), want_lse.len());
    for (i, (a, b)) in part.lse.iter().zip(&want_lse).enumerate() {
        assert!(
            a == b || (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
            "LSE[{i}]: {a} vs {b}"
        );
    }
}

/// The device subset of the edge cases builds on the host (rows, plans, inputs: small shapes),
/// and is the 23 cases the docs promise.
fn device_edge_cases_build() {
    let cases = device_edge_cases();
    assert_eq!(cases.len(), 23);
    for e in &cases {
        let shape = e.shape();
        shape
            .validate()
            .unwrap_or_else(|err| panic!("{}: {err}", e.name));
        let inp = e.inputs::<f16>();
        assert_eq!(inp.q.len(), shape.q_len(), "{}", e.name);
        Plan::new(inp.vis_end).unwrap_or_else(|err| panic!("{}: {err}", e.name));
    }
}

/// Q, K and V as slices of one fused `[rows, n, q_heads + 2 kv_heads, d]` buffer, O inside a
/// wider buffer: the gaps of O stay poisoned, the result matches the dense run.
fn gpu_strided_views_match_dense(gpu: Gpu) {
    let dev = Device::new(gpu);
    let case = &matrix()[3];
    let inp = inputs::<f16>(case);
    let sh = inp.shape;
    let d = sh.head_dim;
    let fz = Fused::new(&inp);
    let s = &dev.stream;
    let plan = Plan::on_device(VisEnd::from_rows(&case.rows).unwrap(), s).unwrap();
    let buf = s.clone_htod(&fz.data).unwrap();
    let (strides, o_token, o_strides) = (fz.strides, fz.o_token, fz.o_strides);
    let mut o = s
        .clone_htod(&vec![f16::from_bits(0x7fff); fz.o_len(&inp)])
        .unwrap();
    let mut lse = s.clone_htod(&vec![POISON_F32; sh.lse_len()]).unwrap();
    dev.fwd
        .run(
            s,
            &plan,
            &sh,
            DeviceTensors {
                q: View::new(buf.slice(fz.q_at..), strides),
                k: View::new(buf.slice(fz.k_at..), strides),
                v: View::new(buf.slice(fz.v_at..), strides),
                o: View::new(o.as_view_mut(), o_strides),
                lse: lse.as_view_mut(),
            },
            inp.scale,
        )
        .unwrap();
    s.synchronize().unwrap();
    let o = s.clone_dtoh(&o).unwrap();
    let lse = s.clone_dtoh(&lse).unwrap();
    let (dense_o, dense_lse) = run_dense(&dev, &inp);
    for t in 0..sh.rows * sh.n {
        let row = &o[t * o_token..(t + 1) * o_token];
        let (got, gap) = row.split_at(sh.q_heads * d);
        assert_eq!(got, &dense_o[t * sh.q_heads * d..(t + 1) * sh.q_heads * d]);
        assert!(
            gap.iter().all(|x| x.to_bits() == 0x7fff),
            "token {t}: the gap was written"
        );
    }
    assert!(lse
        .iter()
        .zip(&dense_lse)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    let _ = &dev.gpu;
}

/// Two small cases (a fully padded row, a ragged d128 row with prefix sharing) for
/// compute-sanitizer's four tools in scripts/gpucheck/run.sh: with the default kernels and, where
/// the default is the sm90a path (compute capability 9.0), with the sm80 path's too.
fn gpu_sanitizer_case(gpu: Gpu) {
    let hopper = gpu.compute_capability() == (9, 0);
    let all = matrix();
    let run = |dev: &Device, kernels: &str| {
        for case in [&all[7], &all[4]] {
            run_case::<f16>(dev, case).unwrap_or_else(|e| panic!("{kernels}: {e}"));
        }
    };
    run(&Device::new(gpu), "the default kernels");
    if hopper {
        let sm80 = KernelChoice {
            arch: Some(Arch::Sm80),
            tile: None,
        };
        let gpu = Gpu::new(0).expect("the same device");
        run(&Device::with_choice(gpu, sm80), "the sm80 path");
    }
}
