//! The batch builder end to end: for every completion of random samples (prompts with k
//! completions and trees, packed several per row), each gathered log-prob must be read at a
//! logit row holding the previous token of that completion's own unshared sequence, at the right
//! position id, and that row must see exactly the sequence so far. Plus packing, the CPU gather
//! against a direct log-softmax, its backward against finite differences, truncation and errors.

use prefix_attn::batch::{Batch, BatchOptions, Sample, TokenTree, Truncation};
use prefix_attn::mask::{visible, TileShape};
use prefix_attn::Error;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const VOCAB: u32 = 50;

fn tokens(rng: &mut StdRng, max: usize) -> Vec<u32> {
    (0..rng.random_range(1..=max))
        .map(|_| rng.random_range(0..VOCAB))
        .collect()
}

/// The unshared sequences of a sample, straight from the input: per completion the token ids
/// and whether each is scored. Leaves in DFS preorder with children in insertion order.
fn expected_sequences(s: &Sample) -> Vec<Vec<(u32, bool)>> {
    match s {
        Sample::Completions {
            prompt,
            completions,
        } => completions
            .iter()
            .map(|c| {
                let mut seq: Vec<(u32, bool)> = prompt.iter().map(|&t| (t, false)).collect();
                seq.extend(c.iter().map(|&t| (t, true)));
                seq
            })
            .collect(),
        Sample::Tree(t) => {
            let n = t.node_count();
            let mut parent = vec![None; n];
            let mut children = vec![Vec::new(); n];
            let mut scored = vec![false; n];
            for v in 1..n {
                let p = t.parent(v).unwrap();
                parent[v] = Some(p);
                scored[v] = t.is_scored(v);
                children[p].push(v);
            }
            let mut out = Vec::new();
            let mut stack = vec![0usize];
            while let Some(v) = stack.pop() {
                stack.extend(children[v].iter().rev());
                if children[v].is_empty() {
                    let mut path = vec![v];
                    while let Some(p) = parent[*path.last().unwrap()] {
                        path.push(p);
                    }
                    path.reverse();
                    out.push(
                        path.iter()
                            .flat_map(|&u| {
                                let sc = scored[u];
                                t.tokens(u).iter().map(move |&x| (x, sc))
                            })
                            .collect(),
                    );
                }
            }
            out
        }
    }
}

fn random_samples(rng: &mut StdRng, count: usize) -> Vec<Sample> {
    (0..count)
        .map(|_| {
            if rng.random_bool(0.5) {
                let k = rng.random_range(1..=4);
                Sample::completions(tokens(rng, 8), (0..k).map(|_| tokens(rng, 8)).collect())
            } else {
                let mut t = TokenTree::new(tokens(rng, 6));
                for id in 1..rng.random_range(2..=7) {
                    let parent = rng.random_range(0..id);
                    let scored = rng.random_bool(0.7);
                    t.add_child(parent, tokens(rng, 5), scored).unwrap();
                }
                Sample::Tree(t)
            }
        })
        .collect()
}

/// Every gathered entry of every completion reads the right logit row, and that row sees
/// exactly its sequence so far.
fn check_batch(batch: &Batch, samples: &[Sample]) {
    let n = batch.n();
    let map = batch.log_prob_map();
    let mut want_refs = Vec::new();
    for (s, sample) in samples.iter().enumerate() {
        let seqs = expected_sequences(sample);
        for (c, seq) in seqs.iter().enumerate() {
            want_refs.push((s, c));
            let idx = map.find(s, c).expect("completion listed");
            let entries = map.offsets()[idx]..map.offsets()[idx + 1];
            let scored: Vec<usize> = (1..seq.len()).filter(|&i| seq[i].1).collect();
            assert_eq!(entries.len(), scored.len(), "sample {s} completion {c}");
            for (e, &i) in entries.zip(&scored) {
                assert_eq!(map.targets()[e], seq[i].0);
                let at = map.logit_rows()[e] as usize;
                let (r, p) = (at / n, at % n);
                assert_eq!(batch.token_ids()[at], seq[i - 1].0, "predicting token");
                assert_eq!(batch.positions()[at] as usize, i - 1, "its position id");
                assert_eq!(batch.sample_ids()[at], s as i32);
                // The predicting query sees exactly seq[0..i], one key per position.
                let row = batch.vis_end().row(r);
                let mut seen: Vec<(i32, u32)> = (0..n)
                    .filter(|&j| visible(row, p, j))
                    .map(|j| (batch.positions()[r * n + j], batch.token_ids()[r * n + j]))
                    .collect();
                seen.sort_unstable();
                let want: Vec<(i32, u32)> = (0..i).map(|t| (t as i32, seq[t].0)).collect();
                assert_eq!(seen, want, "sample {s} completion {c} token {i}");
            }
        }
    }
    let got_refs: Vec<_> = map
        .completions()
        .iter()
        .map(|c| (c.sample, c.completion))
        .collect();
    assert_eq!(
        got_refs, want_refs,
        "completions in (sample, completion) order"
    );
    // Padding carries the pad token, sample -1 and is seen by nobody.
    for r in 0..batch.rows() {
        for j in 0..n {
            if batch.sample_ids()[r * n + j] < 0 {
                assert_eq!(batch.vis_end().row(r)[j] as usize, j);
                assert_eq!(batch.positions()[r * n + j], 0);
                assert_eq!(batch.completion_ids()[r * n + j], -1);
            }
        }
    }
}

#[test]
fn shared_and_paired_batches_read_every_completion_right() {
    let mut rng = StdRng::seed_from_u64(0xba7c_0001);
    for round in 0..40 {
        let count = rng.random_range(1..=8);
        let samples = random_samples(&mut rng, count);
        let mut opts = BatchOptions::new(60);
        opts.vocab = Some(VOCAB);
        opts.pad_token = 7;
        if round % 2 == 0 {
            opts.round_to = Some(20);
        }
        let shared = Batch::shared(&samples, &opts).unwrap();
        let paired = Batch::paired(&samples, &opts).unwrap();
        for batch in [&shared, &paired] {
            check_batch(batch, &samples);
            assert!(batch.n() <= opts.max_len);
            if let Some(m) = opts.round_to {
                assert_eq!(batch.n() % m, 0);
            }
            let real = batch.sample_ids().iter().filter(|&&s| s >= 0).count();
            assert_eq!(batch.real_tokens(), real);
            let eff = real as f64 / (batch.rows() * batch.n()) as f64;
            assert_eq!(batch.efficiency(), eff);
            // Deterministic.
            let again = if std::ptr::eq(batch, &shared) {
                Batch::shared(&samples, &opts).unwrap()
            } else {
                Batch::paired(&samples, &opts).unwrap()
            };
            assert_eq!(&again, batch);
            batch.block_mask(TileShape::new(16, 16).unwrap()).unwrap();
        }
        // Shared tokens: every sample once. Paired: every path.
        let shared_tokens: usize = samples
            .iter()
            .map(|s| match s {
                Sample::Completions {
                    prompt,
                    completions,
                } => prompt.len() + completions.iter().map(Vec::len).sum::<usize>(),
                Sample::Tree(t) => (0..t.node_count()).map(|v| t.tokens(v).len()).sum(),
            })
            .sum();
        let paired_tokens: usize = samples
            .iter()
            .flat_map(expected_sequences)
            .map(|s| s.len())
            .sum();
        assert_eq!(shared.real_tokens(), shared_tokens);
        assert_eq!(paired.real_tokens(), paired_tokens);
        assert_eq!(
            shared.log_prob_map().completions(),
            paired.log_prob_map().completions()
        );
    }
}

#[test]
fn packing_is_first_fit_decreasing_and_reports_efficiency() {
    // Sample lengths 6, 9, 3, 5 into rows of 10: 9 | 6+3 | 5 by FFD.
    let s = |p: usize, c: usize| Sample::completions(vec![1; p], vec![vec![2; c]]);
    let samples = vec![s(3, 3), s(4, 5), s(1, 2), s(2, 3)];
    let batch = Batch::shared(&samples, &BatchOptions::new(10)).unwrap();
    assert_eq!(batch.rows(), 3);
    assert_eq!(batch.n(), 9);
    let rows: Vec<(usize, usize, usize)> = batch
        .placements()
        .iter()
        .map(|p| (p.sample, p.row, p.start))
        .collect();
    assert_eq!(rows, vec![(0, 1, 0), (1, 0, 0), (2, 1, 6), (3, 2, 0)]);
    assert_eq!(batch.efficiency(), 23.0 / 27.0);
    let mut opts = BatchOptions::new(32);
    opts.round_to = Some(16);
    let batch = Batch::shared(&samples, &opts).unwrap();
    assert_eq!((batch.rows(), batch.n()), (1, 32));
    assert_eq!(batch.efficiency(), 23.0 / 32.0);
}

fn random_logits(rng: &mut StdRng, len: usize) -> Vec<f64> {
    (0..len).map(|_| rng.random_range(-3.0..3.0)).collect()
}

#[test]
fn gather_is_a_log_softmax_at_the_mapped_rows() {
    let mut rng = StdRng::seed_from_u64(0xba7c_0002);
    let samples = random_samples(&mut rng, 6);
    let batch = Batch::shared(&samples, &BatchOptions::new(80)).unwrap();
    let v = VOCAB as usize;
    let logits = random_logits(&mut rng, batch.rows() * batch.n() * v);
    let map = batch.log_prob_map();
    let lp = map.gather(&logits, v).unwrap();
    for c in 0..map.completions().len() {
        let mut sum = 0.0;
        for e in map.offsets()[c]..map.offsets()[c + 1] {
            let row = &logits[map.logit_rows()[e] as usize * v..][..v];
            let z: f64 = row.iter().map(|x| x.exp()).sum();
            let want = (row[map.targets()[e] as usize].exp() / z).ln();
            assert!((lp.per_token[e] - want).abs() <= 1e-12, "entry {e}");
            sum += want;
        }
        assert!((lp.sums[c] - sum).abs() <= 1e-12 * (1.0 + sum.abs()));
        assert_eq!(lp.tokens(c).len(), map.offsets()[c + 1] - map.offsets()[c]);
    }
    // f32 logits read the same values.
    let f32_logits: Vec<f32> = logits.iter().map(|&x| x as f32).collect();
    let lp32 = map.gather(&f32_logits, v).unwrap();
    let widened: Vec<f64> = f32_logits.iter().map(|&x| x as f64).collect();
    assert_eq!(lp32, map.gather(&widened, v).unwrap());
    assert!(matches!(
        map.gather(&logits[1..], v),
        Err(Error::LengthMismatch { .. })
    ));
}

#[test]
fn gather_backward_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(0xba7c_0003);
    let samples = random_samples(&mut rng, 3);
    let batch = Batch::shared(&samples, &BatchOptions::new(40)).unwrap();
    let v = VOCAB as usize;
    let logits = random_logits(&mut rng, batch.rows() * batch.n() * v);
    let map = batch.log_prob_map();
    let w: Vec<f64> = (0..map.completions().len())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let loss = |l: &[f64]| -> f64 {
        let lp = map.gather(l, v).unwrap();
        lp.sums.iter().zip(&w).map(|(a, b)| a * b).sum()
    };
    let d = map
        .backward(&logits, v, &map.spread_sums(&w).unwrap())
        .unwrap();
    // Central differences in f64: error ~ h^2 * third derivative + rounding / h; 1e-6 is tight
    // for h = 1e-5 with logits of size 3.
    let h = 1e-5;
    for at in (0..logits.len()).step_by(7) {
        let mut p = logits.clone();
        p[at] += h;
        let mut m = logits.clone();
        m[at] -= h;
        let fd = (loss(&p) - loss(&m)) / (2.0 * h);
        assert!((d[at] - fd).abs() <= 1e-6, "logit {at}: {} vs {fd}", d[at]);
    }
}

#[test]
fn truncation_only_when_asked_and_reported() {
    let sample = Sample::completions(vec![1, 2, 3], vec![vec![4; 6], vec![5; 2], vec![6; 5]]);
    let samples = vec![Sample::completions(vec![9], vec![vec![8]]), sample];
    let opts = BatchOptions::new(10);
    assert_eq!(
        Batch::shared(&samples, &opts),
        Err(Error::SampleTooLong {
            sample: 1,
            len: 16,
            max_len: 10,
            truncated_len: None,
        })
    );
    let mut opts = opts;
    opts.truncate = true;
    let batch = Batch::shared(&samples, &opts).unwrap();
    // 6 tokens cut from the longest each time (ties: the later one): 6,2,5 -> 3,2,2.
    assert_eq!(
        batch.truncations(),
        &[
            Truncation {
                sample: 1,
                completion: 0,
                kept: 3,
                cut: 3
            },
            Truncation {
                sample: 1,
                completion: 2,
                kept: 2,
                cut: 3
            }
        ]
    );
    let cut = vec![
        Sample::completions(vec![9], vec![vec![8]]),
        Sample::completions(vec![1, 2, 3], vec![vec![4; 3], vec![5; 2], vec![6; 2]]),
    ];
    check_batch(&batch, &cut);
    // Even with truncation, the prompt and one token per completion must fit.
    opts.max_len = 5;
    assert_eq!(
        Batch::shared(&samples, &opts),
        Err(Error::SampleTooLong {
            sample: 1,
            len: 16,
            max_len: 5,
            truncated_len: Some(6),
        })
    );
}

#[test]
fn bad_samples_are_typed_errors_naming_the_sample() {
    let ok = Sample::completions(vec![1], vec![vec![2]]);
    let opts = BatchOptions::new(16);
    let run = |bad: Sample| Batch::shared(&[ok.clone(), bad], &opts).unwrap_err();
    assert_eq!(
        run(Sample::completions(vec![], vec![vec![1]])),
        Error::EmptyPrompt { sample: 1 }
    );
    assert_eq!(
        run(Sample::completions(vec![1], vec![])),
        Error::NoCompletions { sample: 1 }
    );
    assert_eq!(
        run(Sample::completions(vec![1], vec![vec![2], vec![]])),
        Error::EmptyCompletion {
            sample: 1,
            completion: 1
        }
    );
    assert_eq!(
        run(Sample::Tree(TokenTree::new(vec![3]))),
        Error::NoCompletions { sample: 1 }
    );
    let mut t = TokenTree::new(vec![3]);
    t.add_child(0, vec![4], true).unwrap();
    t.add_child(1, vec![], true).unwrap();
    assert!(matches!(
        run(Sample::Tree(t)),
        Error::InvalidSegment {
            what: "sample",
            index: 1,
            ..
        }
    ));
    assert!(matches!(
        TokenTree::new(vec![1]).add_child(3, vec![1], true),
        Err(Error::InvalidSegment { .. })
    ));
    let mut vocab = BatchOptions::new(16);
    vocab.vocab = Some(10);
    let mut t = TokenTree::new(vec![3, 4]);
    let a = t.add_child(0, vec![5], false).unwrap();
    t.add_child(a, vec![6, 10], true).unwrap();
    assert_eq!(
        Batch::paired(&[ok.clone(), Sample::Tree(t)], &vocab),
        Err(Error::TokenOutOfVocab {
            sample: 1,
            position: 4,
            token: 10,
            vocab: 10
        })
    );
    vocab.pad_token = 10;
    assert!(matches!(
        Batch::shared(std::slice::from_ref(&ok), &vocab),
        Err(Error::InvalidArgument {
            what: "pad_token",
            ..
        })
    ));
    let mut round = BatchOptions::new(16);
    round.round_to = Some(5);
    assert!(matches!(
        Batch::shared(std::slice::from_ref(&ok), &round),
        Err(Error::InvalidArgument {
            what: "round_to",
            ..
        })
    ));
    assert!(matches!(
        Batch::shared(std::slice::from_ref(&ok), &BatchOptions::new(0)),
        Err(Error::InvalidArgument {
            what: "max_len",
            ..
        })
    ));
    assert!(matches!(
        Batch::shared(&[], &opts),
        Err(Error::InvalidArgument {
            what: "samples",
            ..
        })
    ));
}
