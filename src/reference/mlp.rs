//! The SwiGLU MLP in f64 (Llama/Mistral's feed-forward block): the oracle of the CPU path and of
//! the SwiGLU kernel.
//!
//! `y = (silu(x W_gate) * (x W_up)) W_down` with `silu(g) = g / (1 + exp(-g))`, row-major
//! `x [tokens, hidden]`, `W_gate` and `W_up` `[hidden, ffn]`, `W_down [ffn, hidden]`.

use crate::error::{Error, Result};
use crate::reference::element::Element;

/// `silu(g) * u` in f64.
pub fn swiglu(g: f64, u: f64) -> f64 {
    g / (1.0 + (-g).exp()) * u
}

/// The MLP of `tokens` rows of `x`, in f64. Errors: a zero size, or an operand whose length does
/// not match (`LengthMismatch` naming it).
pub fn swiglu_mlp<T: Element>(
    x: &[T],
    w_gate: &[T],
    w_up: &[T],
    w_down: &[T],
    hidden: usize,
    ffn: usize,
) -> Result<Vec<f64>> {
    if hidden == 0 || ffn == 0 {
        return Err(Error::InvalidArgument {
            what: "hidden / ffn",
            detail: format!("{hidden} / {ffn}: both must be positive"),
        });
    }
    for (what, len, want) in [
        ("w_gate [hidden, ffn]", w_gate.len(), hidden * ffn),
        ("w_up [hidden, ffn]", w_up.len(), hidden * ffn),
        ("w_down [ffn, hidden]", w_down.len(), ffn * hidden),
    ] {
        if len != want {
            return Err(Error::LengthMismatch {
                what,
                expected: want,
                got: len,
            });
        }
    }
    if x.len() % hidden != 0 {
        return Err(Error::LengthMismatch {
            what: "x [tokens, hidden] (a multiple of hidden)",
            expected: (x.len() / hidden + 1) * hidden,
            got: x.len(),
        });
    }
    let tokens = x.len() / hidden;
    let mut y = vec![0f64; tokens * hidden];
    let mut h = vec![0f64; ffn];
    for t in 0..tokens {
        let x_t = &x[t * hidden..(t + 1) * hidden];
        for (f, h_f) in h.iter_mut().enumerate() {
            let (mut g, mut u) = (0.0, 0.0);
            for (c, x_c) in x_t.iter().enumerate() {
                g += x_c.to_f64() * w_gate[c * ffn + f].to_f64();
                u += x_c.to_f64() * w_up[c * ffn + f].to_f64();
            }
            *h_f = swiglu(g, u);
        }
        let y_t = &mut y[t * hidden..(t + 1) * hidden];
        for (f, &h_f) in h.iter().enumerate() {
            for (c, y_c) in y_t.iter_mut().enumerate() {
                *y_c += h_f * w_down[f * hidden + c].to_f64();
            }
        }
    }
    Ok(y)
}
