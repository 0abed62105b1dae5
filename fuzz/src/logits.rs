//! Log-probs from logits, directly in f64: `x[t] - log(sum_j exp(x[j]))`, and the gradient
//! `g * (onehot(t) - softmax(x))`. A row the gather reads is refused when it holds a NaN or
//! +inf anywhere, or -inf at the target; -inf elsewhere is a masked entry (probability 0).

/// The log-sum-exp of a row with no NaN and no +inf (-inf entries add nothing).
pub fn log_sum_exp(row: &[f64]) -> f64 {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    let terms = if crate::planted("lse") && row.len() > 1 {
        &row[..row.len() - 1]
    } else {
        row
    };
    let s: f64 = terms.iter().map(|&x| (x - m).exp()).sum();
    m + s.ln()
}

/// The first column that makes `row` unusable for `target`, with the documented name of its
/// value: NaN or +inf anywhere, -inf at the target.
pub fn first_bad(row: &[f64], target: usize) -> Option<(usize, &'static str)> {
    row.iter().enumerate().find_map(|(j, &x)| {
        if x.is_nan() {
            Some((j, "NaN"))
        } else if x == f64::INFINITY {
            Some((j, "+inf"))
        } else if x == f64::NEG_INFINITY && j == target {
            Some((j, "-inf"))
        } else {
            None
        }
    })
}

/// Whether `got` is within `tol` (relative to the magnitude of `want`, absolute near 0).
pub fn close(got: f64, want: f64, tol: f64) -> bool {
    if got == want {
        return true;
    }
    (got - want).abs() <= tol * (1.0 + want.abs())
}
