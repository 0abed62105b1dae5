//! `Batch::shared` and `Batch::paired` with random samples (prompts with k completions, trees
//! with scored and unscored segments) and options (`max_len`, `round_to`, `truncate`, `vocab`,
//! `pad_token`): either the typed error the first bad stage must give (options, no samples, then
//! each sample in order: empty prompt / completion / segment, k = 0, a token out of the
//! vocabulary at its position, `SampleTooLong` exactly when it cannot fit, with the length
//! truncation could reach), or a batch whose every token, position, `vis_end`, id, placement,
//! truncation and log-prob entry is what the oracle's own layout gives, and in which every token
//! of every completion sees exactly its unshared prompt+completion sequence so far. The
//! deterministic packing is first-fit-decreasing; paired rows are causal sequences.
#![no_main]

use fuzz_oracle::batch::{check_batch, expect, gen_samples, lay_out};
use fuzz_oracle::input::Input;
use fuzz_oracle::note;
use libfuzzer_sys::fuzz_target;
use prefix_attn::batch::{Batch, BatchOptions};
use prefix_attn::layout::MAX_ROW_TOKENS;
use prefix_attn::mask::TileShape;

fn options(inp: &mut Input) -> BatchOptions {
    let max_len = match inp.byte() {
        0..=229 => inp.int(1, 64),
        230..=239 => inp.int(65, 256),
        240..=247 => 0,
        _ => MAX_ROW_TOKENS + inp.int(1, 2),
    };
    let round_to = match inp.byte() {
        0..=119 => None,
        120..=219 => {
            // A divisor of max_len.
            let divs: Vec<usize> = (1..=max_len.min(256))
                .filter(|d| max_len % d == 0)
                .collect();
            if divs.is_empty() {
                Some(inp.int(0, 8))
            } else {
                Some(inp.pick(&divs))
            }
        }
        _ => Some(inp.int(0, 70)),
    };
    let vocab = if inp.chance(150) {
        Some(inp.int(1, 40) as u32)
    } else {
        None
    };
    let pad_token = if inp.chance(220) {
        inp.int(0, vocab.map_or(40, |v| v as usize - 1)) as u32
    } else {
        inp.int(0, 50) as u32
    };
    BatchOptions {
        max_len,
        vocab,
        truncate: inp.chance(128),
        round_to,
        pad_token,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut inp = Input::new(bytes);
    let opts = options(&mut inp);
    let count = if inp.chance(245) { inp.int(1, 6) } else { 0 };
    let valid = inp.chance(160);
    let tok = opts
        .vocab
        .map_or(45, |v| if inp.chance(220) { v - 1 } else { v + 1 });
    let (samples, models) = gen_samples(&mut inp, count, 10, tok, valid);

    for paired in [false, true] {
        let got = if paired {
            Batch::paired(&samples, &opts)
        } else {
            Batch::shared(&samples, &opts)
        };
        match (expect(&models, &opts), got) {
            (Err(problems), Err(e)) => {
                note(&format!(
                    "refused: {}",
                    format!("{e:?}").split([' ', '{']).next().unwrap()
                ));
                assert!(
                    problems.iter().any(|p| p.matches(&e)),
                    "error {e:?}, expected one of {problems:?} (options {opts:?})"
                );
            }
            (Err(problems), Ok(_)) => {
                panic!("accepted, expected one of {problems:?} (options {opts:?})")
            }
            (Ok(_), Err(e)) => panic!("refused: {e:?} (options {opts:?}, samples {models:?})"),
            (Ok((fitted, cuts)), Ok(b)) => {
                let want = lay_out(&fitted, &opts, paired);
                note(match (cuts.is_empty(), want.rows > 1) {
                    (true, false) => "built: one row",
                    (true, true) => "built: several rows",
                    (false, _) => "built: truncated",
                });
                assert!(b.n() <= opts.max_len);
                if let Some(m) = opts.round_to {
                    assert_eq!(b.n() % m, 0);
                }
                check_batch(&b, &fitted, &want, &cuts, paired);
                b.block_mask(TileShape::new(16, 16).unwrap())
                    .expect("block lists");
                let again = if paired {
                    Batch::paired(&samples, &opts)
                } else {
                    Batch::shared(&samples, &opts)
                };
                assert_eq!(again.as_ref(), Ok(&b), "not deterministic");
            }
        }
    }
});
