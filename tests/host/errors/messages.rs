//! Errors that used to name the wrong cause (issue 13): each one now says what is true, as a
//! typed error naming the culprit. Every test here failed before its fix.

use half::bf16;
use prefix_attn::attention::{forward_emulated, HostTensors, View};
use prefix_attn::batch::{Batch, BatchOptions, Sample};
use prefix_attn::emu::Schedule;
use prefix_attn::layout::{RowBuilder, MAX_ROW_TOKENS, ROW_HOST_BYTES_PER_TOKEN};
use prefix_attn::mask::VisEnd;
use prefix_attn::plan::Plan;
use prefix_attn::{reference, AttnShape, Error};

/// A prompt longer than `max_len` cannot be fixed by truncation (only completions are cut): the
/// error says so, and how short truncation could make the sample, instead of claiming
/// truncation was not asked for.
#[test]
fn a_prompt_too_long_for_truncation_says_truncation_was_tried() {
    let samples = vec![Sample::completions(vec![7; 12], vec![vec![1, 2], vec![3]])];
    let opts = BatchOptions {
        truncate: true,
        ..BatchOptions::new(8)
    };
    let err = Batch::shared(&samples, &opts).unwrap_err();
    assert_eq!(
        err,
        Error::SampleTooLong {
            sample: 0,
            len: 15,
            max_len: 8,
            truncated_len: Some(14),
        }
    );
    let text = err.to_string();
    assert!(!text.contains("not asked for"), "{text}");
    assert!(text.contains("14"), "{text}");
    // Without the option the message still says truncation was not asked for.
    let err = Batch::shared(&samples, &BatchOptions::new(8)).unwrap_err();
    assert_eq!(
        err,
        Error::SampleTooLong {
            sample: 0,
            len: 15,
            max_len: 8,
            truncated_len: None,
        }
    );
    assert!(err.to_string().contains("not asked for"), "{err}");
}

/// No rows at all is its own error, not "row 0 has no tokens".
#[test]
fn no_rows_is_not_an_empty_row_zero() {
    let none: [Vec<i32>; 0] = [];
    let err = VisEnd::from_rows(&none).unwrap_err();
    assert!(matches!(err, Error::NoRows { .. }), "{err:?}");
    assert!(!err.to_string().contains("row 0"), "{err}");
    let err = VisEnd::new(4, Vec::new()).unwrap_err();
    assert!(matches!(err, Error::NoRows { .. }), "{err:?}");

    let shape = AttnShape {
        rows: 0,
        n: 64,
        q_heads: 2,
        kv_heads: 1,
        head_dim: 64,
    };
    assert!(matches!(shape.validate(), Err(Error::NoRows { .. })));
    let vis = VisEnd::from_rows(&[vec![64; 64]]).unwrap();
    let err = reference::forward::<f32>(&shape, &vis, &[], &[], &[], 0.125).unwrap_err();
    assert!(matches!(err, Error::NoRows { .. }), "{err:?}");

    // The emulated forward (the same checks as the device forward) with rows = 0.
    let plan = Plan::new(vis).unwrap();
    let (mut o, mut lse) = (Vec::<bf16>::new(), Vec::<f32>::new());
    let err = forward_emulated(
        &plan,
        &shape,
        HostTensors {
            q: View::dense(&[][..], &shape, 2),
            k: View::dense(&[][..], &shape, 1),
            v: View::dense(&[][..], &shape, 1),
            o: View::dense(&mut o[..], &shape, 2),
            lse: &mut lse,
        },
        0.125,
        Schedule::Ascending,
    )
    .unwrap_err();
    assert!(matches!(err, Error::NoRows { .. }), "{err:?}");
    assert!(!err.to_string().contains("row 0"), "{err}");
}

/// A row builder's items are row items, not samples: their errors name the item.
#[test]
fn row_item_errors_name_the_item_not_a_sample() {
    let mut b = RowBuilder::new();
    b.document(2).unwrap();
    b.document(3).unwrap();
    let cases: [(usize, &[usize], &str); 3] = [
        (0, &[1], "prompt"),
        (2, &[], "no completions"),
        (2, &[3, 0], "completion 1"),
    ];
    for (prompt, completions, says) in cases {
        let err = b.prefix_completions(prompt, completions).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidSegment {
                    what: "row item",
                    index: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(!text.contains("sample"), "{text}");
        assert!(text.contains(says), "{text}");
    }
    assert_eq!(b.len(), 5, "a failed append leaves the builder as it was");
}

/// A row length past int32 is an index overflow naming n, not a length mismatch.
#[test]
fn a_row_length_past_int32_is_an_overflow_not_a_mismatch() {
    let n = 1usize << 33;
    assert_eq!(
        VisEnd::new(n, vec![1]).unwrap_err(),
        Error::IndexOverflow {
            what: "row length n",
            value: n as u128,
        }
    );
    // The logits length of a gather is checked without overflowing.
    let samples = vec![Sample::completions(vec![1, 2], vec![vec![3]])];
    let batch = Batch::shared(&samples, &BatchOptions::new(8)).unwrap();
    let err = batch
        .log_prob_map()
        .gather::<f32>(&[0.0; 4], usize::MAX / 2)
        .unwrap_err();
    assert!(matches!(err, Error::IndexOverflow { .. }), "{err:?}");
}

/// Logits `[rows, n, vocab]` for a small batch, every value finite; returns (batch, logits).
fn logits_of_small_batch(vocab: usize) -> (Batch, Vec<f32>) {
    let samples = vec![
        Sample::completions(vec![1, 2, 3], vec![vec![4, 5], vec![6]]),
        Sample::completions(vec![2], vec![vec![7, 1, 1]]),
    ];
    let batch = Batch::shared(&samples, &BatchOptions::new(16)).unwrap();
    let logits = (0..batch.rows() * batch.n() * vocab)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0)
        .collect();
    (batch, logits)
}

/// NaN or +inf in a logit row the gather reads, or -inf at a target, is a typed error naming the
/// completion, the scored token and the logit; -inf elsewhere (a masked vocabulary entry) is
/// probability 0 and gathers fine.
#[test]
fn non_finite_logits_are_reported_not_summed() {
    let vocab = 8;
    let (batch, clean) = logits_of_small_batch(vocab);
    let map = batch.log_prob_map();
    let good = map.gather(&clean, vocab).unwrap();
    assert!(good.sums.iter().all(|s| s.is_finite()));

    // Sample 1's completion 0, its second scored token (target 1).
    let c = map.find(1, 0).unwrap();
    let e = map.offsets()[c] + 1;
    let row = map.logit_rows()[e] as usize;
    let target = map.targets()[e] as usize;
    assert_eq!(target, 1);
    let other = (target + 3) % vocab;
    for (col, value, kind) in [
        (other, f32::NAN, "NaN"),
        (other, f32::INFINITY, "+inf"),
        (target, f32::NEG_INFINITY, "-inf"),
    ] {
        let mut bad = clean.clone();
        bad[row * vocab + col] = value;
        let want = Error::NonFiniteLogit {
            sample: 1,
            completion: 0,
            position: 1,
            logit_row: row,
            vocab_index: col,
            value: kind,
        };
        assert_eq!(map.gather(&bad, vocab).unwrap_err(), want);
        let d = vec![1.0; map.targets().len()];
        assert_eq!(map.backward(&bad, vocab, &d).unwrap_err(), want);
    }
    // A masked (-inf) vocabulary entry that no completion targets (token 0) is fine.
    assert!(!map.targets().contains(&0));
    let mut masked = clean.clone();
    for p in 0..batch.rows() * batch.n() {
        masked[p * vocab] = f32::NEG_INFINITY;
    }
    let lp = map.gather(&masked, vocab).unwrap();
    assert!(lp.per_token.iter().all(|x| x.is_finite()));
}

/// A row builder keeps host metadata per token; a size nobody can mean (here 2^30 tokens, about
/// 43 GB) is refused up front, before any allocation.
#[test]
fn absurd_row_sizes_are_refused_before_allocating() {
    let over = MAX_ROW_TOKENS + 1;
    let refused = |r: Result<(), Error>| match r {
        Err(Error::RowTooLong { tokens, max, .. }) => {
            assert_eq!(max, MAX_ROW_TOKENS);
            assert!(tokens > MAX_ROW_TOKENS as u128);
        }
        other => panic!("expected RowTooLong, got {other:?}"),
    };
    refused(RowBuilder::new().document(1 << 30).map(|_| ()));
    refused(RowBuilder::new().document(over).map(|_| ()));
    refused(RowBuilder::new().padding(over));
    refused(RowBuilder::new().finish(over).map(|_| ()));
    let mut b = RowBuilder::new();
    b.document(10).unwrap();
    refused(b.prefix_completions(MAX_ROW_TOKENS - 10, &[1]).map(|_| ()));
    assert_eq!(b.len(), 10);

    // The documented cost (README, layout::limits): 40 bytes per token on 64-bit hosts.
    #[cfg(target_pointer_width = "64")]
    assert_eq!(ROW_HOST_BYTES_PER_TOKEN, 40);

    // The batch builder pads rows up to a multiple of round_to: max_len bounds that.
    let samples = vec![Sample::completions(vec![1], vec![vec![2]])];
    let opts = BatchOptions {
        round_to: Some(1 << 30),
        ..BatchOptions::new(1 << 30)
    };
    refused(Batch::shared(&samples, &opts).map(|_| ()));
}
