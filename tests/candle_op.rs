//! The candle op on the CPU (the kernels under the emulator), through candle's autograd, against
//! candle's own dense attention in f32 and the crate's f64 reference, within derived bounds
//! (tests/candle_support/check.rs says which).

mod candle_support;

use candle_core::{DType, Device};
use prefix_attn::attention::KernelChoice;
use prefix_attn::bounds::{Dtype, ForwardRun};

use candle_support::cases::{dpo, Case};
use candle_support::check::{check_case, Layout};

fn emulated(case: &Case) -> ForwardRun {
    let dtype = match case.dtype {
        DType::BF16 => Dtype::Bf16,
        _ => Dtype::F16,
    };
    ForwardRun::emulated(&KernelChoice::default(), dtype, case.head_dim).unwrap()
}

#[test]
fn dpo_bf16_gqa_d64() {
    let case = Case {
        name: "dpo",
        rows: vec![dpo(13, 9, 7, 40)],
        q_heads: 4,
        kv_heads: 2,
        head_dim: 64,
        dtype: DType::BF16,
        seed: 1,
    };
    let t = std::time::Instant::now();
    check_case(&case, Layout::Dense, &Device::Cpu, emulated(&case));
    eprintln!("{:?}", t.elapsed());
}
