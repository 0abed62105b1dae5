//! GPU mode (placeholder while the layer kernels land).

use super::cases::{Op, Problem};
use super::driver::{Runner, Timed};

pub struct Gpu;

impl Gpu {
    pub fn open() -> Result<Self, String> {
        Err("GPU mode not wired yet".into())
    }
    pub fn name(&self) -> String {
        String::new()
    }
}

impl Runner for Gpu {
    fn prepare<'a>(&'a self, _op: Op, _p: &'a Problem) -> Result<Timed<'a>, String> {
        Err("not yet".into())
    }
}

pub fn bf16_peak_tflops(_name: &str) -> Option<f64> {
    None
}
