//! `LogProbMap::gather` and `LogProbMap::backward` (and `spread_sums`) on random logits of every
//! element type: each gathered log-prob equals a direct f64 log-softmax at the logit row the
//! oracle's own layout says predicts that token, each sum the sum over the completion, the
//! gradient `g * (onehot(target) - softmax)` at exactly the rows read (0 elsewhere); a NaN or +inf
//! anywhere in a row that is read, or -inf at its target, is `NonFiniteLogit` naming the first
//! such entry (its completion, position, logit row, vocabulary column and value); a wrong length,
//! a zero vocabulary or a target past a smaller vocabulary are their typed errors.
#![no_main]

use fuzz_oracle::batch::{expect, gen_samples, lay_out, Entries};
use fuzz_oracle::input::Input;
use fuzz_oracle::logits::{close, first_bad, log_sum_exp};
use fuzz_oracle::note;
use libfuzzer_sys::fuzz_target;
use prefix_attn::batch::{Batch, BatchOptions, LogProbMap};
use prefix_attn::reference::Element;
use prefix_attn::{bf16, f16, Error};

/// Tolerance of f64 sums in another order.
const TOL: f64 = 1e-12;

/// A logit: mostly moderate, sometimes large, sometimes one of the documented special values.
fn logit(inp: &mut Input, specials: bool) -> f64 {
    match inp.byte() {
        0..=199 => inp.int_i64(-4000, 4000) as f64 / 100.0,
        200..=229 => inp.pick(&[-1e4, 1e4, -60000.0, 60000.0, 0.0, -0.0, 1e-30]),
        230..=241 => f64::NEG_INFINITY,
        242..=248 if specials => f64::NAN,
        _ if specials => f64::INFINITY,
        _ => 1.0,
    }
}

/// One gather / backward call: the map, the oracle's entries (`entries[c]`: completion c's
/// (flat logit row, target)), the logits as f64 before rounding to the element type, the
/// vocabulary they are given for, the batch's logit rows, the gradient per entry.
struct Call<'a> {
    map: &'a LogProbMap,
    entries: &'a [Entries],
    raw: &'a [f64],
    vocab: usize,
    positions: usize,
    d_token: &'a [f64],
}

/// Runs gather and backward on the logits rounded to `T` (`to`; `back` widens them again) and
/// checks them against the oracle.
fn check<T: Element + std::fmt::Debug>(c: &Call, to: fn(f64) -> T, back: fn(T) -> f64) {
    let Call {
        map,
        entries,
        raw,
        vocab,
        positions,
        d_token,
    } = *c;
    let logits: Vec<T> = raw.iter().map(|&x| to(x)).collect();
    let x: Vec<f64> = logits.iter().map(|&v| back(v)).collect();
    let targets_below = entries
        .iter()
        .all(|(_, l)| l.iter().all(|&(_, t)| (t as usize) < vocab));
    let got = map.gather(&logits, vocab);
    let bwd = map.backward(&logits, vocab, d_token);
    let flat: Vec<(usize, (usize, usize), usize, u32)> = entries
        .iter()
        .flat_map(|(key, l)| {
            l.iter()
                .enumerate()
                .map(move |(p, &(r, t))| (p, *key, r, t))
        })
        .collect();

    // Errors in the documented order: vocabulary, length, targets, then the logits read.
    if vocab == 0 {
        note("vocab 0");
        assert!(
            matches!(got, Err(Error::InvalidArgument { what: "vocab", .. })),
            "{got:?}"
        );
        assert!(
            matches!(bwd, Err(Error::InvalidArgument { what: "vocab", .. })),
            "{bwd:?}"
        );
        return;
    }
    if logits.len() != positions * vocab {
        note("length");
        for r in [got.map(|_| ()), bwd.map(|_| ())] {
            assert!(
                matches!(r, Err(Error::LengthMismatch { expected, got, .. })
                    if expected == positions * vocab && got == logits.len()),
                "{r:?}"
            );
        }
        return;
    }
    if !targets_below {
        note("target past the vocabulary");
        // The first completion (in map order) with a target past the vocabulary.
        let (key, l) = entries
            .iter()
            .find(|(_, l)| l.iter().any(|&(_, t)| t as usize >= vocab))
            .unwrap();
        let p = l.iter().position(|&(_, t)| t as usize >= vocab).unwrap();
        let want = Error::TokenOutOfVocab {
            sample: key.0,
            position: p,
            token: l[p].1,
            vocab: vocab as u32,
        };
        assert_eq!(got.as_ref().err(), Some(&want));
        assert_eq!(bwd.as_ref().err(), Some(&want));
        return;
    }
    let row = |r: usize| &x[r * vocab..(r + 1) * vocab];
    // The largest finite magnitude of a row: f64 rounding is relative to it.
    let mag = |r: usize| {
        row(r)
            .iter()
            .filter(|v| v.is_finite())
            .fold(1.0f64, |m, v| m.max(v.abs()))
    };
    let bad = flat
        .iter()
        .find_map(|&(p, key, r, t)| first_bad(row(r), t as usize).map(|b| (p, key, r, b)));
    if let Some((p, key, r, (col, value))) = bad {
        note(&format!("non-finite {value}"));
        let want = Error::NonFiniteLogit {
            sample: key.0,
            completion: key.1,
            position: p,
            logit_row: r,
            vocab_index: col,
            value,
        };
        assert_eq!(got.as_ref().err(), Some(&want), "gather");
        if d_token.len() == flat.len() {
            assert_eq!(bwd.as_ref().err(), Some(&want), "backward");
        } else {
            // Either refusal may come first.
            assert!(
                bwd.as_ref().err() == Some(&want)
                    || matches!(bwd, Err(Error::LengthMismatch { .. })),
                "{bwd:?}"
            );
        }
        return;
    }

    let lp = got.expect("gather of usable logits");
    note(if flat.is_empty() {
        "gathered: no entry"
    } else {
        "gathered"
    });
    assert_eq!(lp.offsets, map.offsets());
    assert_eq!(lp.per_token.len(), flat.len());
    let mut k = 0;
    for (c, (_, l)) in entries.iter().enumerate() {
        let (mut sum, mut sum_tol) = (0.0, 0.0);
        for &(r, t) in l {
            let want = row(r)[t as usize] - log_sum_exp(row(r));
            sum_tol += TOL * mag(r);
            assert!(
                close(lp.per_token[k], want, TOL * mag(r)),
                "log-prob of entry {k}: {} vs {want} (row {:?})",
                lp.per_token[k],
                row(r)
            );
            sum += want;
            k += 1;
        }
        assert!(
            close(lp.sums[c], sum, sum_tol),
            "sum of completion {c}: {} vs {sum}",
            lp.sums[c]
        );
        assert_eq!(
            lp.tokens(c),
            &lp.per_token[map.offsets()[c]..map.offsets()[c + 1]]
        );
    }

    // Backward: d logits[r] = sum over the entries at r of g * (onehot(t) - softmax(row r)).
    if d_token.len() != flat.len() {
        assert!(
            matches!(bwd, Err(Error::LengthMismatch { expected, got, .. })
                if expected == flat.len() && got == d_token.len()),
            "{bwd:?}"
        );
        return;
    }
    let d = bwd.expect("backward of usable logits");
    assert_eq!(d.len(), logits.len());
    let mut want = vec![0.0f64; logits.len()];
    let mut scale = vec![0.0f64; positions];
    for (e, &(_, _, r, t)) in flat.iter().enumerate() {
        let g = d_token[e];
        let lse = log_sum_exp(row(r));
        for j in 0..vocab {
            let p = (row(r)[j] - lse).exp();
            want[r * vocab + j] += g * (f64::from(u8::from(j == t as usize)) - p);
        }
        scale[r] += g.abs() * mag(r);
    }
    for (i, (&g, &w)) in d.iter().zip(&want).enumerate() {
        let r = i / vocab;
        if !flat.iter().any(|f| f.2 == r) {
            assert_eq!(g, 0.0, "d logits at row {r}, never read");
        } else {
            assert!(
                (g - w).abs() <= TOL * (1.0 + scale[r]),
                "d logits[{i}] (row {r}): {g} vs {w}"
            );
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut inp = Input::new(bytes);
    let vocab = inp.int(1, 12);
    let opts = BatchOptions {
        vocab: Some(vocab as u32),
        round_to: if inp.chance(100) { Some(4) } else { None },
        ..BatchOptions::new(48)
    };
    let count = inp.int(1, 4);
    let (samples, models) = gen_samples(&mut inp, count, 6, vocab as u32 - 1, true);
    let Ok((fitted, _)) = expect(&models, &opts) else {
        return; // too long for the row: the batch target covers it
    };
    let b = Batch::shared(&samples, &opts).expect("valid samples");
    let want = lay_out(&fitted, &opts, false);
    let positions = b.rows() * b.n();
    let map = b.log_prob_map();

    // The vocabulary the logits are given for: the batch's, or another (a zero, a smaller one
    // some target is past, a larger one), or a length that is off.
    let (gv, len) = match inp.byte() {
        0..=219 => (vocab, positions * vocab),
        220..=229 => (0, 0),
        230..=239 => {
            let v = inp.int(1, vocab);
            (v, positions * v)
        }
        240..=247 => {
            let v = vocab + inp.int(1, 3);
            (v, positions * v)
        }
        _ => {
            let (full, off) = (positions * vocab, inp.int(1, 3));
            (
                vocab,
                if off <= full && inp.chance(128) {
                    full - off
                } else {
                    full + off
                },
            )
        }
    };
    let specials = inp.chance(90);
    let raw: Vec<f64> = (0..len).map(|_| logit(&mut inp, specials)).collect();
    let entries = &want.entries;
    let n_entries: usize = entries.iter().map(|e| e.1.len()).sum();
    let d_len = if inp.chance(245) {
        n_entries
    } else {
        n_entries + 1
    };
    let d_token: Vec<f64> = (0..d_len)
        .map(|_| inp.int_i64(-300, 300) as f64 / 100.0)
        .collect();

    let call = Call {
        map,
        entries,
        raw: &raw,
        vocab: gv,
        positions,
        d_token: &d_token,
    };
    match inp.int(0, 3) {
        0 => check::<f32>(&call, |v| v as f32, f64::from),
        1 => check::<f64>(&call, |v| v, |v| v),
        2 => check::<bf16>(&call, bf16::from_f64, bf16::to_f64),
        _ => check::<f16>(&call, f16::from_f64, f16::to_f64),
    }

    // spread_sums: each completion's gradient on each of its entries.
    let d_sums: Vec<f64> = (0..entries.len()).map(|c| c as f64 + 0.5).collect();
    let spread = map.spread_sums(&d_sums).expect("one per completion");
    let want_spread: Vec<f64> = entries
        .iter()
        .enumerate()
        .flat_map(|(c, (_, l))| std::iter::repeat_n(c as f64 + 0.5, l.len()))
        .collect();
    assert_eq!(spread, want_spread);
    assert!(matches!(
        map.spread_sums(&d_sums[1..]),
        Err(Error::LengthMismatch { .. })
    ));
});
