//! Checking a kernel's outputs against the bounds: the first violating element as a value, or a
//! summary of how close the outputs came.
//!
//! The rules are the tests' (tests/forward_*.rs, tests/backward_*.rs):
//! - every O, dQ, dK, dV element finite (a NaN or an infinity is never within a bound);
//! - where a query sees no key: O exactly 0, LSE exactly -inf, dQ exactly 0; where a key is seen
//!   by nobody: dK and dV exactly 0;
//! - everywhere else: each O and LSE element within its own bound, each gradient's error within
//!   its Frobenius-norm bound;
//! - the LSE handed to the backward: -inf exactly where the reference's is, elsewhere within
//!   [`LSE_ERR_MAX`] of it (where the backward's first-order bound stops holding).

use std::fmt;

use crate::reference::{self, Element};
use crate::shape::AttnShape;

use super::backward::{BackwardBounds, Grad, LseError};
use super::figures::LSE_ERR_MAX;
use super::forward::ForwardBounds;

/// Which output a [`Violation`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// The forward's O, `[rows, n, q_heads, d]`.
    O,
    /// The forward's LSE, `[rows, q_heads, n]`.
    Lse,
    /// The LSE the backward was given (the forward's), checked against what the backward's
    /// bound assumes of it.
    GivenLse,
    /// A gradient.
    Grad(Grad),
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::O => f.write_str("O"),
            Output::Lse => f.write_str("LSE"),
            Output::GivenLse => f.write_str("the LSE given to the backward"),
            Output::Grad(g) => write!(f, "{g}"),
        }
    }
}

/// Where an element is: its index in the flat output and what it indexes. `token` is the query
/// (O, LSE, dQ) or the key (dK, dV); `column` is None for LSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct At {
    pub index: usize,
    pub row: usize,
    pub token: usize,
    pub head: usize,
    pub column: Option<usize>,
}

impl At {
    /// Element `index` of a `[rows, n, heads, d]` tensor.
    fn token_major(sh: &AttnShape, heads: usize, index: usize) -> At {
        let d = sh.head_dim;
        let t = index / (heads * d);
        At {
            index,
            row: t / sh.n,
            token: t % sh.n,
            head: index / d % heads,
            column: Some(index % d),
        }
    }

    /// Element `index` of a `[rows, q_heads, n]` LSE.
    fn lse(sh: &AttnShape, index: usize) -> At {
        At {
            index,
            row: index / (sh.q_heads * sh.n),
            token: index % sh.n,
            head: index / sh.n % sh.q_heads,
            column: None,
        }
    }
}

/// "row r query i head h column c" (key instead of query for dK and dV).
struct Place<'a>(Output, &'a At);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Place(what, at) = self;
        let token = match what {
            Output::Grad(Grad::Dk) | Output::Grad(Grad::Dv) => "key",
            _ => "query",
        };
        write!(
            f,
            "[{}] row {} {token} {} head {}",
            at.index, at.row, at.token, at.head
        )?;
        if let Some(c) = at.column {
            write!(f, " column {c}")?;
        }
        Ok(())
    }
}

/// The first way a kernel's outputs break the bounds, with what was found and what was wanted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Violation {
    /// An output has the wrong number of elements.
    Length {
        what: Output,
        expected: usize,
        got: usize,
    },
    /// An element is NaN or infinite (never within a bound; a NaN is also what an element the
    /// kernel never wrote holds in the tests, which poison their outputs with NaN).
    NotFinite { what: Output, at: At, got: f64 },
    /// Where a query sees no key (O, LSE, dQ) or a key is seen by nobody (dK, dV) the result is
    /// exact: `want` is 0, or -inf for an LSE, and `got` differs.
    NotExact {
        what: Output,
        at: At,
        got: f64,
        want: f64,
    },
    /// An element is further than its bound from the reference (O, LSE; for the LSE given to the
    /// backward, `bound` is [`LSE_ERR_MAX`]).
    Beyond {
        what: Output,
        at: At,
        got: f64,
        want: f64,
        bound: f64,
    },
    /// A gradient's error ||G_kernel - G||_F is beyond its bound (`norm` = ||G||_F).
    NormBeyond {
        what: Output,
        error: f64,
        bound: f64,
        norm: f64,
    },
}

impl Violation {
    /// The output it is about.
    pub fn what(&self) -> Output {
        match *self {
            Violation::Length { what, .. }
            | Violation::NotFinite { what, .. }
            | Violation::NotExact { what, .. }
            | Violation::Beyond { what, .. }
            | Violation::NormBeyond { what, .. } => what,
        }
    }

    /// The element it is about, where it is one element.
    pub fn at(&self) -> Option<At> {
        match *self {
            Violation::NotFinite { at, .. }
            | Violation::NotExact { at, .. }
            | Violation::Beyond { at, .. } => Some(at),
            Violation::Length { .. } | Violation::NormBeyond { .. } => None,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Length {
                what,
                expected,
                got,
            } => write!(f, "{what} has {got} elements, want {expected}"),
            Violation::NotFinite { what, at, got } => write!(
                f,
                "{what}{} = {got} (not finite: not written, or NaN)",
                Place(*what, at)
            ),
            Violation::NotExact {
                what,
                at,
                got,
                want,
            } => {
                let why = match what {
                    Output::Grad(Grad::Dk) | Output::Grad(Grad::Dv) => "the key is seen by nobody",
                    _ => "the query sees no key",
                };
                write!(
                    f,
                    "{what}{}: {why}, so want exactly {want}, got {got}",
                    Place(*what, at)
                )
            }
            Violation::Beyond {
                what: Output::GivenLse,
                at,
                got,
                want,
                bound,
            } => write!(
                f,
                "the forward's LSE{} = {got}, reference {want}: error {:.3e} beyond {bound:e}, \
                 where the backward's first-order bound stops holding",
                Place(Output::Lse, at),
                (got - want).abs()
            ),
            Violation::Beyond {
                what,
                at,
                got,
                want,
                bound,
            } => write!(
                f,
                "{what}{}: {what} {got}, want {want}: error {:.3e} > bound {bound:.3e}",
                Place(*what, at),
                (got - want).abs()
            ),
            Violation::NormBeyond {
                what,
                error,
                bound,
                norm,
            } => write!(
                f,
                "||{what} - reference|| = {error:.3e} > bound {bound:.3e} (||{what}|| = {norm:.3e})"
            ),
        }
    }
}

impl std::error::Error for Violation {}

/// An error and its bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Margin {
    pub error: f64,
    pub bound: f64,
}

/// How close a forward's outputs came to their bounds (all within them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForwardSummary {
    /// The O element with the largest error / bound ratio (0 / 1 if none has an error).
    pub o_worst: Margin,
    /// The LSE element with the largest error / bound ratio.
    pub lse_worst: Margin,
    /// ||O - O_ref|| / ||O_ref||.
    pub o_rel_l2: f64,
    /// max |LSE - LSE_ref| over the queries that see a key.
    pub lse_max_abs: f64,
}

impl fmt::Display for ForwardSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "O rel L2 {:.3e}, worst O error/bound {:.3e}/{:.3e}; LSE max abs {:.3e}, \
             worst LSE error/bound {:.3e}/{:.3e}",
            self.o_rel_l2,
            self.o_worst.error,
            self.o_worst.bound,
            self.lse_max_abs,
            self.lse_worst.error,
            self.lse_worst.bound
        )
    }
}

/// A gradient's error, bound and norm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradMargin {
    /// ||G_kernel - G||_F.
    pub error: f64,
    /// Its bound.
    pub bound: f64,
    /// ||G||_F.
    pub norm: f64,
}

/// How close a backward's gradients came to their bounds (all within them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackwardSummary {
    /// The error of the LSE the backward was given (it widened the bounds).
    pub lse_error: LseError,
    /// dQ, dK, dV (index with `Grad as usize`).
    pub grads: [GradMargin; 3],
}

impl fmt::Display for BackwardSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in Grad::ALL.iter().enumerate() {
            let m = &self.grads[i];
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{g} {:.2e} (bound {:.2e})", m.error, m.bound)?;
        }
        Ok(())
    }
}

/// The gradients a backward wrote, dense in their layouts.
#[derive(Debug, Clone, Copy)]
pub struct Gradients<'a, U> {
    pub dq: &'a [U],
    pub dk: &'a [U],
    pub dv: &'a [U],
}

impl ForwardBounds {
    /// Checks a forward's O (`[rows, n, q_heads, d]`, any [`Element`] type: the kernel's own or
    /// a widened copy) and LSE (`[rows, q_heads, n]`) against the reference within the bounds.
    /// Returns how close they came, or the first violation: lengths, then a non-finite O
    /// element (in index order), then per query in LSE order the exact values where it sees no
    /// key or its LSE bound, then each O element's bound.
    pub fn check<U: Element>(&self, o: &[U], lse: &[f32]) -> Result<ForwardSummary, Violation> {
        let sh = &self.shape;
        let d = sh.head_dim;
        let want = &self.reference;
        for (what, expected, got) in [
            (Output::O, want.o.len(), o.len()),
            (Output::Lse, want.lse.len(), lse.len()),
        ] {
            if expected != got {
                return Err(Violation::Length {
                    what,
                    expected,
                    got,
                });
            }
        }
        let got_o: Vec<f64> = o.iter().map(|x| x.to_f64()).collect();
        let got_lse: Vec<f64> = lse.iter().map(|&x| f64::from(x)).collect();
        if let Some(i) = got_o.iter().position(|x| !x.is_finite()) {
            return Err(Violation::NotFinite {
                what: Output::O,
                at: At::token_major(sh, sh.q_heads, i),
                got: got_o[i],
            });
        }
        // (error, bound) of the element with the largest error / bound ratio.
        let mut lse_worst = (0.0f64, 1.0f64);
        for (idx, (&g, &w)) in got_lse.iter().zip(&want.lse).enumerate() {
            let at = At::lse(sh, idx);
            if w == f64::NEG_INFINITY {
                if g != f64::NEG_INFINITY {
                    return Err(Violation::NotExact {
                        what: Output::Lse,
                        at,
                        got: g,
                        want: w,
                    });
                }
                let first = ((at.row * sh.n + at.token) * sh.q_heads + at.head) * d;
                if let Some(c) = got_o[first..first + d].iter().position(|&x| x != 0.0) {
                    return Err(Violation::NotExact {
                        what: Output::O,
                        at: At::token_major(sh, sh.q_heads, first + c),
                        got: got_o[first + c],
                        want: 0.0,
                    });
                }
                continue;
            }
            let err = (g - w).abs();
            let bound = self.lse[idx];
            if err.is_nan() || err > bound {
                return Err(Violation::Beyond {
                    what: Output::Lse,
                    at,
                    got: g,
                    want: w,
                    bound,
                });
            }
            if err * lse_worst.1 > lse_worst.0 * bound {
                lse_worst = (err, bound);
            }
        }
        let mut o_worst = (0.0f64, 1.0f64);
        for (idx, (&g, &w)) in got_o.iter().zip(&want.o).enumerate() {
            let err = (g - w).abs();
            let bound = self.o[idx];
            if err.is_nan() || err > bound {
                return Err(Violation::Beyond {
                    what: Output::O,
                    at: At::token_major(sh, sh.q_heads, idx),
                    got: g,
                    want: w,
                    bound,
                });
            }
            if err * o_worst.1 > o_worst.0 * bound {
                o_worst = (err, bound);
            }
        }
        Ok(ForwardSummary {
            o_worst: Margin {
                error: o_worst.0,
                bound: o_worst.1,
            },
            lse_worst: Margin {
                error: lse_worst.0,
                bound: lse_worst.1,
            },
            o_rel_l2: reference::rel_l2_error(&got_o, &want.o),
            lse_max_abs: reference::max_abs_error(&got_lse, &want.lse),
        })
    }
}

impl BackwardBounds {
    /// The LSE the backward was given (the forward kernel's, `[rows, q_heads, n]`): -inf exactly
    /// where the reference's is, and elsewhere within [`LSE_ERR_MAX`] of it. Returns its largest
    /// error e: every probability the backward recomputes from it carries a relative error of at
    /// most e (1 + e), which [`Self::bound`] adds to delta. (Whether the forward met its own,
    /// much tighter, bound is [`ForwardBounds::check`]'s to say.)
    pub fn forward_lse_error(&self, lse: &[f32]) -> Result<LseError, Violation> {
        if lse.len() != self.lse.len() {
            return Err(Violation::Length {
                what: Output::GivenLse,
                expected: self.lse.len(),
                got: lse.len(),
            });
        }
        let mut err: f64 = 0.0;
        for (i, (&g, &w)) in lse.iter().zip(&self.lse).enumerate() {
            let g = f64::from(g);
            if w == f64::NEG_INFINITY {
                if g != w {
                    return Err(Violation::NotExact {
                        what: Output::GivenLse,
                        at: At::lse(&self.shape, i),
                        got: g,
                        want: w,
                    });
                }
                continue;
            }
            let e = (g - w).abs();
            if e.is_nan() || e > LSE_ERR_MAX {
                return Err(Violation::Beyond {
                    what: Output::GivenLse,
                    at: At::lse(&self.shape, i),
                    got: g,
                    want: w,
                    bound: LSE_ERR_MAX,
                });
            }
            err = err.max(e);
        }
        Ok(LseError(err))
    }

    /// Checks a backward's gradients, given the LSE it was handed ([`Self::forward_lse_error`]
    /// first, then [`Self::check_given`]).
    pub fn check<U: Element>(
        &self,
        lse: &[f32],
        grads: Gradients<'_, U>,
    ) -> Result<BackwardSummary, Violation> {
        let lse_error = self.forward_lse_error(lse)?;
        self.check_given(lse_error, grads)
    }

    /// Checks dQ, dK and dV (any [`Element`] type) in that order against the bounds of a backward
    /// given an LSE with error `lse_error`: lengths, every element finite, exact zeros where a
    /// query sees no key (dQ) or a key is seen by nobody (dK, dV), and each gradient's error
    /// within its Frobenius-norm bound.
    pub fn check_given<U: Element>(
        &self,
        lse_error: LseError,
        grads: Gradients<'_, U>,
    ) -> Result<BackwardSummary, Violation> {
        let sh = &self.shape;
        let mut out = BackwardSummary {
            lse_error,
            grads: [GradMargin {
                error: 0.0,
                bound: 0.0,
                norm: 0.0,
            }; 3],
        };
        for which in Grad::ALL {
            let what = Output::Grad(which);
            let got = match which {
                Grad::Dq => grads.dq,
                Grad::Dk => grads.dk,
                Grad::Dv => grads.dv,
            };
            let want = self.reference(which);
            if got.len() != want.len() {
                return Err(Violation::Length {
                    what,
                    expected: want.len(),
                    got: got.len(),
                });
            }
            let g: Vec<f64> = got.iter().map(|x| x.to_f64()).collect();
            let heads = if which == Grad::Dq {
                sh.q_heads
            } else {
                sh.kv_heads
            };
            if let Some(i) = g.iter().position(|x| !x.is_finite()) {
                return Err(Violation::NotFinite {
                    what,
                    at: At::token_major(sh, heads, i),
                    got: g[i],
                });
            }
            let width = heads * sh.head_dim;
            let live = if which == Grad::Dq {
                &self.query_sees
            } else {
                &self.key_seen
            };
            for (t, &live) in live.iter().enumerate() {
                if live {
                    continue;
                }
                if let Some(c) = g[t * width..(t + 1) * width].iter().position(|&x| x != 0.0) {
                    let i = t * width + c;
                    return Err(Violation::NotExact {
                        what,
                        at: At::token_major(sh, heads, i),
                        got: g[i],
                        want: 0.0,
                    });
                }
            }
            let error = g
                .iter()
                .zip(want.iter())
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            let bound = self.bound(which, lse_error);
            let norm = self.norms[which as usize][2];
            out.grads[which as usize] = GradMargin { error, bound, norm };
            if error.is_nan() || error > bound {
                return Err(Violation::NormBeyond {
                    what,
                    error,
                    bound,
                    norm,
                });
            }
        }
        Ok(out)
    }
}
