//! The one statistic the bench reports for a speedup, and its interval.
//!
//! A point is timed in rounds; each round times the paired and the shared format back to back,
//! so a round's ratio `paired time / shared time` compares two timings taken under the same
//! machine conditions. The speedup is the **median of the per-round ratios**, with a 95%
//! **distribution-free confidence interval on that median**: the order statistics
//! `[r_(k), r_(n+1-k)]` of the sorted ratios, with `k` the largest rank such that a
//! Binomial(n, 1/2) variable is below `k` with probability at most 2.5%. It assumes nothing
//! about the shape of the timing noise (only that rounds are independent), which matters on a
//! shared machine whose noise is lopsided: a preempted sample is much slower, never faster.
//! Fewer than 6 rounds cannot give a 95% interval this way; the interval is then unbounded.

/// Two-sided confidence level of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// What the tables, CSV, JSON and charts call the statistic.
pub const STATISTIC: &str =
    "median of per-round paired/shared time ratios, 95% distribution-free (order-statistic) CI";

/// A median with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
    /// Values it was computed from.
    pub n: usize,
}

impl Estimate {
    /// Half the interval's width over the median: 0.05 means "within about ±5%".
    pub fn rel_half_width(&self) -> f64 {
        if self.median > 0.0 && self.lo.is_finite() && self.hi.is_finite() {
            0.5 * (self.hi - self.lo) / self.median
        } else {
            f64::INFINITY
        }
    }
}

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    })
}

/// The 1-based rank `k` of the lower bound of the median's interval for `n` values, or `None`
/// when no rank reaches the confidence (n < 6 at 95%).
pub fn lower_rank(n: usize) -> Option<usize> {
    let alpha = (1.0 - CONFIDENCE) / 2.0;
    // P(B <= j) for B ~ Binomial(n, 1/2), accumulated in log space so large n does not
    // underflow: log C(n, j) - n log 2.
    let ln2n = n as f64 * std::f64::consts::LN_2;
    let mut ln_c = 0.0f64; // log C(n, 0)
    let mut cdf = 0.0f64;
    let mut k = None;
    for j in 0..n {
        cdf += (ln_c - ln2n).exp();
        // Interval [r_(j+1), r_(n-j)] misses the median with probability 2 P(B <= j).
        if cdf <= alpha {
            k = Some(j + 1);
        } else {
            break;
        }
        ln_c += ((n - j) as f64).ln() - ((j + 1) as f64).ln();
    }
    k
}

/// Median and its 95% interval (unbounded below 6 values); `None` for no values.
pub fn estimate(values: &[f64]) -> Option<Estimate> {
    let median = median(values)?;
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let (lo, hi) = match lower_rank(n) {
        Some(k) => (v[k - 1], v[n - k]),
        None => (f64::NEG_INFINITY, f64::INFINITY),
    };
    Some(Estimate { median, lo, hi, n })
}
