//! The figures every bound is built from, each with its provenance: IEEE f32 rounding, the
//! roundings of the element types, the PTX ISA's documented maximum errors of the approximate
//! instructions, and the accumulation latitude of the tensor-core products.
//!
//! Nothing here is measured on a kernel: a bound that holds with these figures does not rely on
//! more accuracy than IEEE arithmetic and the PTX ISA document (measured values, where one was
//! taken, are quoted beside the documented ones, which are the larger and are used).

/// 2^e, exactly (for the normal range of f64).
pub(crate) const fn pow2(e: i32) -> f64 {
    f64::from_bits(((1023 + e) as u64) << 52)
}

/// f32 unit roundoff: 2^-24, round to nearest (add, multiply, FMA, division: IEEE on the device
/// and on the host).
pub const U: f64 = pow2(-24);

/// `ex2.approx.ftz.f32`, relative to 2^x: "the maximum ulp error is 2 ulp from correctly rounded
/// result across the full range of inputs" (PTX ISA, Floating Point Instructions: ex2). 2 ulp is
/// at most 4u of the result, plus u for the correctly rounded result itself: 5u; the factor
/// 1 + 2^-20 covers the second-order terms. (Measured on an H200: 2^-22.71, about 2.4u.)
pub const EX2: f64 = 5.0 * U * (1.0 + pow2(-20));

/// `lg2.approx.ftz.f32`: "the maximum absolute error is 2^-22 when the input operand is in the
/// range (0.5, 2)" (PTX ISA, Floating Point Instructions: lg2). The forward kernel takes lg2 only
/// of the significand of its row sum, in [1, 2).
pub const LG2_ABS: f64 = pow2(-22);

/// Relative error of the kernels' `scale_log2 = fl(scale * fl(log2 e))` against
/// `scale * log2 e`: two f32 roundings (2u, with room for their product).
pub const ETA: f64 = 2.0001 * U;

/// Results below 2^-126 are flushed to zero by the `.ftz` instructions (and by the emulator's
/// model of them): the absolute error of a flushed term.
pub const FTZ: f64 = pow2(-126);

/// One tensor-core step of 16 products in the backward's model, relative to the sum of the
/// absolute products: 18 * 2^-23. Each of the 16 additions may be off by one f32 ulp (2u) of a
/// partial sum the magnitudes bound, plus the final rounding and room: the bound
/// `tests/gpu/emu_fidelity.rs` holds the device's `mma.sync` to against the emulator. The same
/// figure is used on the emulator (which rounds once, far inside it).
pub const MMA_STEP_BACKWARD: f64 = 18.0 * pow2(-23);

/// The largest error of the LSE handed from the forward to the backward that the backward's
/// first-order bound takes: `exp(x) - 1 <= x (1 + x)` holds there with room, and a forward within
/// its own derived bound is far below it (about 1e-5 at |LSE| ~ 150).
pub const LSE_ERR_MAX: f64 = pow2(-12);

/// The element types the kernels read and write (P, O, dS and the gradients are rounded to it):
/// the crate's one [`crate::attention::Dtype`], whose roundoff figures the bounds use.
pub use crate::attention::Dtype;

/// Which rounding model of the tensor-core products a forward bound assumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arith {
    /// The SIMT emulator (`attention::forward_emulated`): each `mma.m16n8k16` (or `wgmma` k16
    /// step) sums its 16 products and c exactly in f64 and rounds once to f32 (plus the f64 sum's
    /// own error, at most 16 * 2^-53 of the magnitudes).
    Emulator,
    /// A GPU: the PTX ISA leaves the order and rounding of `mma`'s accumulation unspecified
    /// ("with at least single precision", mma, "Precision and rounding"), so each of its 16
    /// additions may err by one f32 ulp (2u) of a partial sum bounded by the magnitudes, plus the
    /// final rounding: at most 17 * 2u of (|c| + sum |a b|) per step (as in
    /// `tests/gpu/emu_fidelity.rs`; `wgmma` is given the same latitude).
    Device,
}

impl Arith {
    /// Error of one mma step: relative to |c| + sum |a b| on a device, to |d| on the emulator.
    pub fn mma_step(self) -> f64 {
        match self {
            Arith::Emulator => U,
            Arith::Device => 34.0 * U,
        }
    }
}
