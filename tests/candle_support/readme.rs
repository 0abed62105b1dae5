use candle_core::{DType, Device, Tensor, Var};
use prefix_attn::{Batch, BatchOptions, Sample, Scale};

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu; // or Device::new_cuda(0)?

    // A DPO pair and a GRPO group of 3: each prompt once, its completions after it.
    let samples = vec![
        Sample::completions(vec![5, 8, 2, 9], vec![vec![4, 4, 1], vec![7, 3]]),
        Sample::completions(vec![6, 1], vec![vec![2], vec![3, 3], vec![8, 1, 1]]),
    ];
    let batch = Batch::shared(&samples, &BatchOptions::new(4096))?; // the crate's errors convert
    let plan = batch.plan()?; // once per batch, for every layer; or Plan::new(vis_end)?
    let (rows, n) = (batch.rows(), batch.n());

    // One layer: Q, K and V narrowed from a fused QKV projection (4 query heads, 2 kv heads of
    // 64, bf16), read in place; feed the projections batch.token_ids() and batch.positions().
    let x = Tensor::randn(0f32, 1., (rows, n, 4 + 2 + 2, 64), &dev)?.to_dtype(DType::BF16)?;
    let qkv = Var::from_tensor(&x)?;
    let q = qkv.narrow(2, 0, 4)?; // [rows, n, 4, 64], strided
    let (k, v) = (qkv.narrow(2, 4, 2)?, qkv.narrow(2, 6, 2)?);
    let o = prefix_attn::candle::attention(&q, &k, &v, &plan, Scale::default_for(64))?;

    // Backward through candle's autograd: dQ, dK and dV land in the fused tensor's gradient.
    let loss = o.to_dtype(DType::F32)?.sqr()?.mean_all()?;
    let grads = loss.backward()?;
    let d_qkv = grads.get(&qkv).expect("a gradient for qkv"); // [rows, n, 8, 64], bf16
    assert_eq!(d_qkv.dims(), qkv.dims());
    Ok(())
}

// Not in the README: how tests/candle_op.rs calls the README's `main`.

pub fn run() -> candle_core::Result<()> {
    main()
}
