//! `prefix_attn::candle::attention` on the CPU (the kernels under the emulator), through
//! candle's autograd, against candle's own dense attention in f32 (matmul, a mask built from
//! `vis_end`, softmax; GQA by repeating kv heads) and the crate's f64 reference, within derived
//! bounds (tests/candle_support/check.rs lists the checks, dense_bound.rs derives candle's f32
//! error): outputs and dQ, dK, dV for DPO, GRPO, packed, tree and padded rows, bf16 and f16, GQA
//! and not, head dims 64 and 128, dense and strided inputs (narrowed from a fused QKV, a
//! head-major transpose, misaligned offsets), a plan from a `Batch`; and bad inputs as errors.
//!
//! Sizes are small (rows of 40 to 96 tokens, a few heads; one case of two 520-token rows): the
//! emulator is slow.

mod candle_support;

use candle_core::{DType, Device, Tensor};
use prefix_attn::attention::KernelChoice;
use prefix_attn::bounds::{Dtype, ForwardRun};
use prefix_attn::{Plan, Scale, VisEnd};

use candle_support::cases::{
    batch_case, dpo, dpo_case, fused_cases, grpo_case, long_case, odd_case, packed_case,
    padded_cases, tree_case, values, Case,
};
use candle_support::check::{check_case, check_case_with, run_op, Layout};

fn emulated(case: &Case) -> ForwardRun {
    let dtype = match case.dtype {
        DType::BF16 => Dtype::Bf16,
        _ => Dtype::F16,
    };
    ForwardRun::emulated(&KernelChoice::default(), dtype, case.head_dim).unwrap()
}

fn check(case: Case, layout: Layout) {
    let run = emulated(&case);
    check_case(&case, layout, &Device::Cpu, run);
}

#[test]
fn dpo_bf16_gqa_d64() {
    check(dpo_case(), Layout::Dense);
}

#[test]
fn grpo_f16_d128() {
    check(grpo_case(), Layout::Dense);
}

#[test]
fn packed_bf16_gqa_d128() {
    check(packed_case(), Layout::Dense);
}

#[test]
fn tree_f16_gqa_d64() {
    check(tree_case(), Layout::Dense);
}

#[test]
fn padded_bf16_and_f16_d64() {
    for case in padded_cases() {
        check(case, Layout::Dense);
    }
}

#[test]
fn fused_qkv_views_bf16_d64_and_f16_d128() {
    // Q, K and V narrowed from one [rows, n, q_heads + 2 kv_heads, d] tensor: strided views the
    // kernels read in place; the gradient lands in the fused tensor.
    for case in fused_cases() {
        check(case, Layout::Fused);
    }
}

#[test]
fn head_major_and_misaligned_inputs() {
    // Q transposed from [rows, q_heads, n, d] (read in place with its strides), K and V 8 bytes
    // into their buffers (copied to an aligned layout by the op, gradients flowing through).
    check(odd_case(), Layout::Odd);
}

#[test]
fn plan_from_a_batch() {
    let (case, plan) = batch_case();
    check_case_with(&case, &plan, Layout::Dense, &Device::Cpu, emulated(&case));
}

#[test]
fn inference_without_gradients_gives_the_same_output() {
    // Plain tensors (nothing tracks gradients): the op runs its forward and builds no graph.
    let case = Case {
        name: "no grad",
        rows: vec![dpo(6, 5, 4, 24)],
        q_heads: 2,
        kv_heads: 1,
        head_dim: 64,
        dtype: DType::BF16,
        seed: 11,
    };
    let sh = case.shape();
    let x = values(&case);
    let plan = Plan::new(case.vis_end()).unwrap();
    let t = |v: &[f64], heads: usize| {
        Tensor::from_vec(
            v.to_vec(),
            (sh.rows, sh.n, heads, sh.head_dim),
            &Device::Cpu,
        )
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap()
    };
    let (q, k, v) = (t(&x.q, 2), t(&x.k, 1), t(&x.v, 1));
    let o = prefix_attn::candle::attention(&q, &k, &v, &plan, 0.125).unwrap();
    assert!(!o.track_op());
    let tracked = run_op(&case, &x, &plan, Layout::Dense, &Device::Cpu).unwrap();
    let o: Vec<f64> = o
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(o, tracked.o, "same kernels, same inputs: the same bits");
}

/// The error of `attention(q, k, v, plan, scale)`, which must be one.
fn error_of(q: &Tensor, k: &Tensor, v: &Tensor, plan: &Plan, scale: impl Into<Scale>) -> String {
    match prefix_attn::candle::attention(q, k, v, plan, scale) {
        Ok(_) => panic!(
            "accepted: q {:?} k {:?} v {:?}",
            q.dims(),
            k.dims(),
            v.dims()
        ),
        Err(e) => {
            eprintln!("refused: {}", e.to_string().lines().next().unwrap_or(""));
            e.to_string()
        }
    }
}

#[test]
fn bad_inputs_are_errors_that_say_what_is_wrong() {
    let cpu = &Device::Cpu;
    let plan = Plan::new(VisEnd::from_rows(&[dpo(4, 2, 2, 8)]).unwrap()).unwrap();
    let t =
        |heads: usize, d: usize, dtype: DType| Tensor::zeros((1, 8, heads, d), dtype, cpu).unwrap();
    let (q, kv) = (t(4, 64, DType::BF16), t(2, 64, DType::BF16));

    // dtype: f32 (or anything but bf16/f16), and a mix.
    let e = error_of(
        &t(4, 64, DType::F32),
        &t(2, 64, DType::F32),
        &t(2, 64, DType::F32),
        &plan,
        0.125,
    );
    assert!(e.contains("f32") && e.contains("bf16 or f16"), "{e}");
    let e = error_of(
        &q,
        &t(2, 64, DType::F16),
        &t(2, 64, DType::F16),
        &plan,
        0.125,
    );
    assert!(e.contains("f16") && e.contains("bf16"), "{e}");

    // Head dims the kernels do not have (32), and K/V of another head dim than Q.
    let e = error_of(
        &t(4, 32, DType::BF16),
        &t(2, 32, DType::BF16),
        &t(2, 32, DType::BF16),
        &plan,
        0.125,
    );
    assert!(e.contains("head dim 32"), "{e}");
    let e = error_of(
        &q,
        &t(2, 128, DType::BF16),
        &t(2, 128, DType::BF16),
        &plan,
        0.125,
    );
    assert!(e.starts_with("k:") && e.contains("128"), "{e}");

    // A plan made for other rows or another length.
    let other = Plan::new(VisEnd::from_rows(&[dpo(4, 3, 3, 10)]).unwrap()).unwrap();
    let e = error_of(&q, &kv, &kv, &other, 0.125);
    assert!(e.starts_with("plan:") && e.contains("10 tokens"), "{e}");
    let two_rows =
        Plan::new(VisEnd::from_rows(&[dpo(4, 2, 2, 8), dpo(4, 2, 2, 8)]).unwrap()).unwrap();
    let e = error_of(&q, &kv, &kv, &two_rows, 0.125);
    assert!(e.starts_with("plan:") && e.contains("2 rows"), "{e}");

    // Head counts: q_heads not a multiple of kv_heads; V unlike K.
    let e = error_of(&t(3, 64, DType::BF16), &kv, &kv, &plan, 0.125);
    assert!(e.contains('3') && e.contains('2'), "{e}");
    let e = error_of(&q, &kv, &t(1, 64, DType::BF16), &plan, 0.125);
    assert!(e.starts_with("v:"), "{e}");

    // Not [rows, n, heads, d]; a scale that is not finite and positive.
    let flat = Tensor::zeros((8, 4, 64), DType::BF16, cpu).unwrap();
    let e = error_of(&flat, &kv, &kv, &plan, 0.125);
    assert!(e.starts_with("q:") && e.contains("4 dims"), "{e}");
    for bad in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        let e = error_of(&q, &kv, &kv, &plan, bad);
        assert!(e.contains("scale"), "{e}");
    }
}

/// The device test's long rows (tests/candle_device.rs) on the emulator: rows of 520 tokens,
/// several 128-key tiles per row, most skipped for the completions (about 25 s on 2 cores).
#[test]
fn long_grpo_rows_bf16_gqa_d128() {
    check(long_case(), Layout::Fused);
}

/// The README's candle example ("### candle"): tests/candle_support/readme.rs begins with the
/// README's block, word for word.
#[path = "candle_support/readme.rs"]
mod readme;

#[test]
fn readme_candle_example_runs() {
    readme::run().unwrap();
}

#[test]
fn readme_candle_example_is_this_code() {
    let readme = include_str!("../README.md");
    let section = &readme[readme
        .find("\n### candle\n")
        .expect("README has ### candle")..];
    let fence = "```rust,ignore\n";
    let start = section
        .find(fence)
        .expect("a rust,ignore block under ### candle")
        + fence.len();
    let len = section[start..].find("```").expect("the block ends");
    let block = &section[start..start + len];
    let code = include_str!("candle_support/readme.rs");
    assert!(
        code.starts_with(block),
        "README.md's candle block and tests/candle_support/readme.rs differ: copy one to the other"
    );
}
