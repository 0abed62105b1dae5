//! Error measures for comparing a result with the reference.
//!
//! Conventions, chosen so a broken kernel cannot pass:
//! - any NaN on either side, or slices of different lengths, give NaN (every `<= tol` check
//!   fails);
//! - an element where both sides hold the same infinity (an LSE of `-inf` for a query that sees
//!   no key, on both sides) matches exactly and is left out of the norms;
//! - an infinity on one side only, or opposite infinities, give `+inf`.

/// `||got - want||_2 / ||want||_2`; 0 when both are zero, `+inf` when only `want` is zero.
///
/// Values are divided by the largest magnitude first, so squares neither underflow nor overflow.
pub fn rel_l2_error(got: &[f64], want: &[f64]) -> f64 {
    let mut magnitude = 0.0f64;
    if let Err(special) = for_each_finite_pair(got, want, |g, w| {
        magnitude = magnitude.max(g.abs()).max(w.abs());
    }) {
        return special;
    }
    if magnitude == 0.0 {
        return 0.0; // every finite pair is (0, 0)
    }
    let (mut diff2, mut want2) = (0.0, 0.0);
    let _ = for_each_finite_pair(got, want, |g, w| {
        let (g, w) = (g / magnitude, w / magnitude);
        diff2 += (g - w) * (g - w);
        want2 += w * w;
    });
    if diff2 == 0.0 {
        0.0
    } else {
        (diff2 / want2).sqrt()
    }
}

/// `max_i |got_i - want_i|`; 0 for empty slices.
pub fn max_abs_error(got: &[f64], want: &[f64]) -> f64 {
    let mut max = 0.0f64;
    for_each_finite_pair(got, want, |g, w| max = max.max((g - w).abs()))
        .map_or_else(|special| special, |()| max)
}

/// Calls `f` on every pair of finite values; `Err(NaN or +inf)` decides the result early as the
/// module documents. A NaN anywhere wins over an infinity mismatch.
fn for_each_finite_pair(got: &[f64], want: &[f64], mut f: impl FnMut(f64, f64)) -> Result<(), f64> {
    if got.len() != want.len() {
        return Err(f64::NAN);
    }
    if got.iter().chain(want).any(|x| x.is_nan()) {
        return Err(f64::NAN);
    }
    let mut mismatched_infinity = false;
    for (&g, &w) in got.iter().zip(want) {
        if g.is_finite() && w.is_finite() {
            f(g, w);
        } else if g != w {
            mismatched_infinity = true;
        }
    }
    if mismatched_infinity {
        Err(f64::INFINITY)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values() {
        let want = [3.0, 4.0];
        assert_eq!(rel_l2_error(&want, &want), 0.0);
        assert!((rel_l2_error(&[3.0, 4.5], &want) - 0.1).abs() < 1e-15);
        assert_eq!(max_abs_error(&[3.0, 4.5], &want), 0.5);
        assert_eq!(max_abs_error(&[2.0, 4.5], &want), 1.0);
        assert_eq!(rel_l2_error(&[], &[]), 0.0);
        assert_eq!(max_abs_error(&[], &[]), 0.0);
    }

    #[test]
    fn zeros() {
        assert_eq!(rel_l2_error(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
        assert_eq!(rel_l2_error(&[0.0, 1e-300], &[0.0, 0.0]), f64::INFINITY);
        // Tiny and huge values do not underflow or overflow the squares.
        assert!((rel_l2_error(&[2e-300], &[1e-300]) - 1.0).abs() < 1e-15);
        assert!((rel_l2_error(&[2e300, 0.0], &[1e300, 0.0]) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn nan_and_length_mismatch_fail_every_tolerance() {
        for (got, want) in [
            (vec![f64::NAN, 1.0], vec![1.0, 1.0]),
            (vec![1.0, 1.0], vec![1.0, f64::NAN]),
            (vec![f64::NAN, f64::INFINITY], vec![0.0, 1.0]),
            (vec![1.0], vec![1.0, 1.0]),
        ] {
            assert!(rel_l2_error(&got, &want).is_nan(), "{got:?} {want:?}");
            assert!(max_abs_error(&got, &want).is_nan(), "{got:?} {want:?}");
        }
    }

    #[test]
    fn infinities() {
        let ninf = f64::NEG_INFINITY;
        // Matching -inf (a masked query's LSE) is exact and does not dilute the norm.
        assert_eq!(rel_l2_error(&[ninf, 2.0], &[ninf, 1.0]), 1.0);
        assert_eq!(max_abs_error(&[ninf, 2.0], &[ninf, 1.0]), 1.0);
        assert_eq!(rel_l2_error(&[ninf], &[ninf]), 0.0);
        for (got, want) in [
            ([ninf, 1.0], [0.0, 1.0]),
            ([0.0, 1.0], [ninf, 1.0]),
            ([f64::INFINITY, 1.0], [ninf, 1.0]),
        ] {
            assert_eq!(rel_l2_error(&got, &want), f64::INFINITY);
            assert_eq!(max_abs_error(&got, &want), f64::INFINITY);
        }
    }
}
