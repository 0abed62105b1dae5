//! prefix-attn in one build with candle-core (`cuda`) and cudarc as cubecl asks for it, run on a
//! machine with no GPU: the binary links and starts (this file runs at all), prefix-attn's device
//! entry point is an `Err` with a clear reason, and candle's CPU path works.

use prefix_attn::error::Error;

/// The features of cudarc that candle-core and this crate ask for meet in one build: with
/// `dynamic-linking` on, cudarc links the libraries, so prefix-attn's driver probe must find
/// libcuda already loaded (a stub here) and go on to cuInit, which fails: `NoDevice`, not a panic.
#[test]
fn prefix_attn_gpu_is_an_error_without_a_device() {
    assert!(
        prefix_attn::cuda::kernels_built(),
        "this test is about the driver path: build with nvcc (NVCC set) so the fatbin is embedded"
    );
    match prefix_attn::cuda::Gpu::new(0) {
        Ok(_) => panic!("Gpu::new(0) succeeded on a machine that should have no GPU"),
        Err(e @ Error::NoDevice { .. }) => {
            let msg = e.to_string();
            eprintln!("Gpu::new(0): {msg}");
            assert!(
                msg.contains("no usable CUDA device"),
                "unclear message: {msg}"
            );
        }
        Err(e) => panic!("Gpu::new(0) failed with the wrong error: {e}"),
    }
}

/// candle-core's CPU tensors in the same binary.
#[test]
fn candle_cpu_tensor_op() -> candle_core::Result<()> {
    use candle_core::{Device, Tensor};
    let a = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu)?;
    let b = Tensor::new(&[[5f32, 6.], [7., 8.]], &Device::Cpu)?;
    let c = a.matmul(&b)?;
    assert_eq!(c.to_vec2::<f32>()?, vec![vec![19., 22.], vec![43., 50.]]);
    Ok(())
}

/// candle's own CUDA device fails cleanly too (its cudarc calls return the stub's error).
#[test]
fn candle_cuda_device_is_an_error_without_a_device() {
    assert!(
        candle_core::utils::cuda_is_available(),
        "candle-core built without `cuda`"
    );
    match candle_core::Device::new_cuda(0) {
        Ok(_) => panic!("candle opened a CUDA device on a machine that should have no GPU"),
        Err(e) => eprintln!("candle Device::new_cuda(0): {e}"),
    }
}
