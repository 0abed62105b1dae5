//! The batch builder's documented behaviour, restated: samples (a prompt with k completions, or
//! a tree whose root is the shared history) are checked in input order; an over-long sample is
//! `SampleTooLong` unless truncation is asked for, which cuts one token at a time from the end of
//! the currently longest completion (leaf segment; the later one on a tie) while every leaf
//! keeps a token; units (whole samples for `shared`, one prompt+completion sequence each for
//! `paired`) are packed first-fit-decreasing (longest first, ties by input order, each into the
//! first row with room, a row's members in input order) into rows of `max_len`, the row length
//! is the fullest row rounded up to `round_to`; every unit is laid out by the README's table.

use prefix_attn::batch::{Batch, BatchOptions, Sample, TokenTree};
use prefix_attn::layout::MAX_ROW_TOKENS;
use prefix_attn::Error;

use crate::input::Input;
use crate::rule::sees;
use crate::tree::{Seg, Shape};

/// How a sample was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Completions,
    Tree,
}

/// A sample as the oracle keeps it: per node (in the order added) its tokens, parent and whether
/// its tokens are scored. For prompt + completions node 0 is the prompt (not scored) and node
/// `c + 1` completion `c` (scored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub kind: Kind,
    pub tokens: Vec<Vec<u32>>,
    pub parent: Vec<Option<usize>>,
    pub scored: Vec<bool>,
}

impl Model {
    pub fn shape(&self) -> Shape {
        Shape {
            segs: self
                .tokens
                .iter()
                .zip(&self.parent)
                .map(|(t, &parent)| Seg {
                    parent,
                    len: t.len(),
                })
                .collect(),
        }
    }

    pub fn total(&self) -> usize {
        self.tokens.iter().map(Vec::len).sum()
    }

    /// Completion `c`'s unshared sequence: (token, scored, node, index in the node's segment).
    pub fn sequence(&self, c: usize) -> Vec<(u32, bool, usize, usize)> {
        let shape = self.shape();
        let leaf = shape.leaves()[c];
        shape
            .path(leaf)
            .into_iter()
            .flat_map(|v| {
                self.tokens[v]
                    .iter()
                    .enumerate()
                    .map(move |(t, &x)| (x, self.scored[v], v, t))
            })
            .collect()
    }

    pub fn completions(&self) -> usize {
        self.shape().leaves().len()
    }
}

/// Random samples: each a prompt with k completions or a tree, with segments of up to `seg`
/// tokens (sometimes empty, sometimes with an out-of-range parent) and token ids below `tok`.
/// Tree nodes whose `add_child` is refused are checked here (typed error, tree unchanged) and
/// left out of the model.
pub fn gen_samples(
    inp: &mut Input,
    count: usize,
    seg: usize,
    tok: u32,
    valid: bool,
) -> (Vec<Sample>, Vec<Model>) {
    let mut samples = Vec::new();
    let mut models = Vec::new();
    let lo = usize::from(valid);
    let tokens = |inp: &mut Input, lo: usize, hi: usize| -> Vec<u32> {
        let len = inp.int(lo, hi);
        (0..len).map(|_| inp.int(0, tok as usize) as u32).collect()
    };
    for _ in 0..count {
        if inp.chance(128) {
            let prompt = tokens(inp, lo, seg);
            let k = inp.int(lo, 4);
            let completions: Vec<Vec<u32>> = (0..k).map(|_| tokens(inp, lo, seg)).collect();
            let mut m = Model {
                kind: Kind::Completions,
                tokens: vec![prompt.clone()],
                parent: vec![None],
                scored: vec![false],
            };
            for c in &completions {
                m.tokens.push(c.clone());
                m.parent.push(Some(0));
                m.scored.push(true);
            }
            samples.push(Sample::completions(prompt, completions));
            models.push(m);
        } else {
            let root = tokens(inp, lo, seg);
            let mut t = TokenTree::new(root.clone());
            let mut m = Model {
                kind: Kind::Tree,
                tokens: vec![root],
                parent: vec![None],
                scored: vec![false],
            };
            let nodes = inp.int(lo, 6);
            for _ in 0..nodes {
                let id = m.tokens.len();
                let parent = if valid || inp.chance(230) {
                    inp.int(0, id - 1)
                } else {
                    inp.int(id, id + 3)
                };
                let toks = tokens(inp, lo, seg);
                let scored = inp.chance(180);
                match t.add_child(parent, toks.clone(), scored) {
                    Ok(got) => {
                        assert!(
                            parent < id,
                            "add_child accepted parent {parent} of node {id}"
                        );
                        assert_eq!(got, id, "add_child returns the new node's id");
                        m.tokens.push(toks);
                        m.parent.push(Some(parent));
                        m.scored.push(scored);
                    }
                    Err(e) => {
                        assert!(
                            parent >= id,
                            "add_child refused parent {parent} < {id}: {e}"
                        );
                        assert!(
                            matches!(e, Error::InvalidSegment { what: "tree node", index, .. } if index == id),
                            "{e:?}"
                        );
                    }
                }
            }
            // The tree's accessors give back what was added.
            assert_eq!(t.node_count(), m.tokens.len());
            for v in 0..t.node_count() {
                assert_eq!(t.tokens(v), &m.tokens[v][..]);
                assert_eq!(t.parent(v), m.parent[v]);
                assert_eq!(t.is_scored(v), m.scored[v]);
            }
            samples.push(Sample::Tree(t));
            models.push(m);
        }
    }
    (samples, models)
}

/// One error the call may return, and what it must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Argument(&'static str),
    MaxLenTooLong(usize),
    EmptyPrompt(usize),
    NoCompletions(usize),
    EmptyCompletion(usize, usize),
    /// A tree node without tokens: `InvalidSegment` naming the sample.
    EmptyNode(usize),
    /// Some token of the sample is not below `vocab`: `(position, token)` of every such token.
    OutOfVocab {
        sample: usize,
        vocab: u32,
        bad: Vec<(usize, u32)>,
    },
    TooLong {
        sample: usize,
        len: usize,
        max_len: usize,
        truncated_len: Option<usize>,
    },
}

impl Problem {
    pub fn matches(&self, e: &Error) -> bool {
        match (self, e) {
            (Problem::Argument(w), Error::InvalidArgument { what, .. }) => w == what,
            (Problem::MaxLenTooLong(t), Error::RowTooLong { tokens, max, .. }) => {
                *tokens == *t as u128 && *max == MAX_ROW_TOKENS
            }
            (Problem::EmptyPrompt(s), Error::EmptyPrompt { sample }) => s == sample,
            (Problem::NoCompletions(s), Error::NoCompletions { sample }) => s == sample,
            (Problem::EmptyCompletion(s, c), Error::EmptyCompletion { sample, completion }) => {
                (s, c) == (sample, completion)
            }
            (
                Problem::EmptyNode(s),
                Error::InvalidSegment {
                    what: "sample",
                    index,
                    ..
                },
            ) => s == index,
            (
                Problem::OutOfVocab { sample, vocab, bad },
                Error::TokenOutOfVocab {
                    sample: s,
                    position,
                    token,
                    vocab: v,
                },
            ) => sample == s && vocab == v && bad.contains(&(*position, *token)),
            (
                Problem::TooLong {
                    sample,
                    len,
                    max_len,
                    truncated_len,
                },
                Error::SampleTooLong {
                    sample: s,
                    len: l,
                    max_len: m,
                    truncated_len: t,
                },
            ) => (sample, len, max_len, truncated_len) == (s, l, m, t),
            _ => false,
        }
    }
}

/// What the options alone make the call refuse (any of them may be reported).
pub fn option_problems(o: &BatchOptions) -> Vec<Problem> {
    let mut p = Vec::new();
    if o.max_len == 0 {
        p.push(Problem::Argument("max_len"));
    }
    if o.max_len > MAX_ROW_TOKENS {
        p.push(Problem::MaxLenTooLong(o.max_len));
    }
    if let Some(m) = o.round_to {
        if m == 0 || !o.max_len.is_multiple_of(m) {
            p.push(Problem::Argument("round_to"));
        }
    }
    if let Some(v) = o.vocab {
        if o.pad_token >= v {
            p.push(Problem::Argument("pad_token"));
        }
    }
    p
}

/// Tokens cut from one completion: (sample, completion, kept, cut).
pub type Cut = (usize, usize, usize, usize);

/// Checks one sample and, if it fits (or truncation makes it fit), returns it as laid out with
/// what was cut; else the problems it may be reported with.
pub fn fit_sample(
    s: usize,
    m: &Model,
    o: &BatchOptions,
) -> Result<(Model, Vec<Cut>), Vec<Problem>> {
    let mut p = Vec::new();
    if m.tokens[0].is_empty() {
        p.push(Problem::EmptyPrompt(s));
    }
    if m.tokens.len() == 1 {
        p.push(Problem::NoCompletions(s));
    }
    for v in 1..m.tokens.len() {
        if m.tokens[v].is_empty() {
            p.push(match m.kind {
                Kind::Completions => Problem::EmptyCompletion(s, v - 1),
                Kind::Tree => Problem::EmptyNode(s),
            });
        }
    }
    // Structure first: the checks that need a well-formed tree below assume one.
    if !p.is_empty() {
        return Err(p);
    }
    let shape = m.shape();
    if let Some(vocab) = o.vocab {
        let bad: Vec<(usize, u32)> = (0..m.tokens.len())
            .flat_map(|v| {
                let d = shape.depth(v);
                m.tokens[v]
                    .iter()
                    .enumerate()
                    .filter(|&(_, &x)| x >= vocab)
                    .map(move |(t, &x)| (d + t, x))
                    .collect::<Vec<_>>()
            })
            .collect();
        if !bad.is_empty() {
            p.push(Problem::OutOfVocab {
                sample: s,
                vocab,
                bad,
            });
        }
    }
    let total = m.total();
    let mut out = m.clone();
    let mut cuts = Vec::new();
    if total > o.max_len {
        let leaves = shape.leaves();
        let cuttable: usize = leaves.iter().map(|&l| m.tokens[l].len() - 1).sum();
        let excess = total - o.max_len;
        if !o.truncate || cuttable < excess {
            p.push(Problem::TooLong {
                sample: s,
                len: total,
                max_len: o.max_len,
                truncated_len: o.truncate.then_some(total - cuttable),
            });
        } else {
            let mut len: Vec<usize> = leaves.iter().map(|&l| m.tokens[l].len()).collect();
            for _ in 0..excess {
                // The longest; the later one on a tie.
                let tie = |c: usize| {
                    if crate::planted("truncate") {
                        len.len() - c
                    } else {
                        c
                    }
                };
                let c = (0..len.len())
                    .max_by_key(|&c| (len[c], tie(c)))
                    .expect("a leaf");
                assert!(len[c] > 1);
                len[c] -= 1;
            }
            for (c, &l) in leaves.iter().enumerate() {
                let before = m.tokens[l].len();
                if len[c] < before {
                    cuts.push((s, c, len[c], before - len[c]));
                    out.tokens[l].truncate(len[c]);
                }
            }
        }
    }
    if p.is_empty() {
        Ok((out, cuts))
    } else {
        Err(p)
    }
}

/// What a call must do with these samples and options: the first stage with a problem (the
/// options, then an empty sample list, then the samples in order) and what it may be reported
/// as, or the samples as laid out and the cuts.
pub fn expect(models: &[Model], o: &BatchOptions) -> Result<(Vec<Model>, Vec<Cut>), Vec<Problem>> {
    let p = option_problems(o);
    if !p.is_empty() {
        return Err(p);
    }
    if models.is_empty() {
        return Err(vec![Problem::Argument("samples")]);
    }
    let mut fitted = Vec::new();
    let mut cuts = Vec::new();
    for (s, m) in models.iter().enumerate() {
        let (f, c) = fit_sample(s, m, o)?;
        fitted.push(f);
        cuts.extend(c);
    }
    Ok((fitted, cuts))
}

/// First-fit-decreasing: longest first (ties by input order), each into the first row with
/// room; members of a row in input order.
pub fn first_fit_decreasing(lens: &[usize], cap: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by(|&a, &b| lens[b].cmp(&lens[a]).then(a.cmp(&b)));
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for u in order {
        let fill = |r: &Vec<usize>| r.iter().map(|&x| lens[x]).sum::<usize>();
        match rows.iter_mut().find(|r| fill(r) + lens[u] <= cap) {
            Some(r) => r.push(u),
            None => rows.push(vec![u]),
        }
    }
    for r in &mut rows {
        r.sort_unstable();
    }
    rows
}

/// One token of the expected batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tok {
    pub token: u32,
    pub pos: i32,
    pub vis_end: i32,
    pub sample: i32,
    pub completion: i32,
    pub node: i32,
}

/// Where a unit landed: (sample, completion for a paired unit, row, start, len), as
/// `Batch::placements` lists it.
pub type UnitAt = (usize, Option<usize>, usize, usize, usize);

/// A completion `(sample, completion)` and its gather entries `(flat logit row, target)`.
pub type Entries = ((usize, usize), Vec<(usize, u32)>);

/// The expected batch: row length, rows, every token, each unit's place, and per completion (in
/// (sample, completion) order) its flat `(logit row, target)` entries.
#[derive(Debug, Clone)]
pub struct Expected {
    pub n: usize,
    pub rows: usize,
    pub toks: Vec<Tok>,
    pub units: Vec<UnitAt>,
    pub entries: Vec<Entries>,
    /// Per completion, the flat index of every token of its unshared sequence.
    pub seq_at: Vec<((usize, usize), Vec<usize>)>,
}

/// Lays out `models` (already fitted) as `Batch::shared` (`paired == false`) or
/// `Batch::paired` must.
pub fn lay_out(models: &[Model], o: &BatchOptions, paired: bool) -> Expected {
    // Units: (sample, completion or None, length).
    let mut units: Vec<(usize, Option<usize>, usize)> = Vec::new();
    for (s, m) in models.iter().enumerate() {
        if paired {
            for c in 0..m.completions() {
                units.push((s, Some(c), m.sequence(c).len()));
            }
        } else {
            units.push((s, None, m.total()));
        }
    }
    let lens: Vec<usize> = units.iter().map(|u| u.2).collect();
    let packed = first_fit_decreasing(&lens, o.max_len);
    let fullest = packed
        .iter()
        .map(|r| r.iter().map(|&u| lens[u]).sum::<usize>())
        .max()
        .unwrap();
    let n = match o.round_to {
        Some(m) => fullest.div_ceil(m) * m,
        None => fullest,
    };
    let rows = packed.len();
    let mut toks: Vec<Tok> = (0..rows * n)
        .map(|f| Tok {
            token: o.pad_token,
            pos: 0,
            vis_end: (f % n) as i32,
            sample: -1,
            completion: -1,
            node: -1,
        })
        .collect();
    let mut placed = vec![(0, 0); units.len()];
    for (r, members) in packed.iter().enumerate() {
        let mut at = 0;
        for &u in members {
            placed[u] = (r, at);
            at += lens[u];
        }
    }
    let mut out_units = Vec::new();
    let mut entries = Vec::new();
    let mut seq_at = Vec::new();
    for (u, &(s, comp, len)) in units.iter().enumerate() {
        let (r, start) = placed[u];
        out_units.push((s, comp, r, start, len));
        let m = &models[s];
        let base = r * n;
        match comp {
            Some(c) => {
                // One causal sequence: prompt+completion.
                let seq = m.sequence(c);
                for (i, &(x, _, v, _)) in seq.iter().enumerate() {
                    toks[base + start + i] = Tok {
                        token: x,
                        pos: i as i32,
                        vis_end: (start + len) as i32,
                        sample: s as i32,
                        completion: c as i32,
                        node: v as i32,
                    };
                }
                let at: Vec<usize> = (0..seq.len()).map(|i| base + start + i).collect();
                entries.push(((s, c), scored_entries(&seq, &at)));
                seq_at.push(((s, c), at));
            }
            None => {
                let shape = m.shape();
                let leaves = shape.leaves();
                let placed_nodes = shape.place(start);
                for (k, (vis, pos, v)) in shape.tokens(start).into_iter().enumerate() {
                    // Row index start + k is token (start + k - node start) of node v.
                    toks[base + start + k] = Tok {
                        token: m.tokens[v][start + k - placed_nodes[v].start],
                        pos,
                        vis_end: vis,
                        sample: s as i32,
                        completion: leaves.iter().position(|&l| l == v).map_or(-1, |c| c as i32),
                        node: v as i32,
                    };
                }
                for c in 0..leaves.len() {
                    let seq = m.sequence(c);
                    let at: Vec<usize> = seq
                        .iter()
                        .map(|&(_, _, v, t)| base + placed_nodes[v].start + t)
                        .collect();
                    entries.push(((s, c), scored_entries(&seq, &at)));
                    seq_at.push(((s, c), at));
                }
            }
        }
    }
    entries.sort_by_key(|e| e.0);
    seq_at.sort_by_key(|e| e.0);
    Expected {
        n,
        rows,
        toks,
        units: out_units,
        entries,
        seq_at,
    }
}

/// The gather entries of one sequence: every scored token at index `i >= 1`, read at the logit
/// row of the token before it.
fn scored_entries(seq: &[(u32, bool, usize, usize)], at: &[usize]) -> Vec<(usize, u32)> {
    (1..seq.len())
        .filter(|&i| seq[i].1)
        .map(|i| (at[i - 1], seq[i].0))
        .collect()
}

/// Checks a built batch against the expected one, and the rule's statement of what a shared
/// row must give: every token of every completion sees exactly its unshared sequence so far.
pub fn check_batch(b: &Batch, models: &[Model], want: &Expected, cuts: &[Cut], paired: bool) {
    let n = want.n;
    assert_eq!((b.n(), b.rows()), (n, want.rows), "row length and rows");
    let vis = b.vis_end();
    assert_eq!((vis.n(), vis.rows()), (n, want.rows));
    for (f, t) in want.toks.iter().enumerate() {
        let (r, j) = (f / n, f % n);
        let got = Tok {
            token: b.token_ids()[f],
            pos: b.positions()[f],
            vis_end: vis.row(r)[j],
            sample: b.sample_ids()[f],
            completion: b.completion_ids()[f],
            node: b.node_ids()[f],
        };
        assert_eq!(got, *t, "row {r} token {j} (paired: {paired})");
    }
    let places: Vec<_> = b
        .placements()
        .iter()
        .map(|p| (p.sample, p.completion, p.row, p.start, p.len))
        .collect();
    assert_eq!(places, want.units, "placements in input order");
    let real: usize = want.units.iter().map(|u| u.4).sum();
    assert_eq!(b.real_tokens(), real);
    assert_eq!(b.efficiency(), real as f64 / (want.rows * n) as f64);

    // The rule: each token of each completion sees exactly its sequence so far, by position.
    for ((s, c), at) in &want.seq_at {
        let seq = models[*s].sequence(*c);
        for (i, &q) in at.iter().enumerate() {
            let (r, qi) = (q / n, q % n);
            let row = vis.row(r);
            let mut seen: Vec<(i32, u32)> = (0..n)
                .filter(|&j| sees(row, qi, j))
                .map(|j| (b.positions()[r * n + j], b.token_ids()[r * n + j]))
                .collect();
            seen.sort_unstable();
            let prefix: Vec<(i32, u32)> = (0..=i).map(|t| (t as i32, seq[t].0)).collect();
            assert_eq!(
                seen, prefix,
                "sample {s} completion {c} token {i}: what it sees"
            );
            assert_eq!(b.positions()[q], i as i32);
        }
    }
    if paired {
        // Paired rows are causal sequences: each unit's tokens see every earlier token of it.
        for &(_, _, r, start, len) in &want.units {
            for j in start..start + len {
                assert_eq!(vis.row(r)[j] as usize, start + len);
            }
        }
    }

    // The log-prob map.
    let map = b.log_prob_map();
    let refs: Vec<(usize, usize)> = map
        .completions()
        .iter()
        .map(|c| (c.sample, c.completion))
        .collect();
    let want_refs: Vec<(usize, usize)> = want.entries.iter().map(|e| e.0).collect();
    assert_eq!(refs, want_refs, "completions in (sample, completion) order");
    assert_eq!(map.offsets().len(), refs.len() + 1);
    assert_eq!(map.offsets()[0], 0);
    for (k, (key, list)) in want.entries.iter().enumerate() {
        assert_eq!(map.find(key.0, key.1), Some(k));
        let (a, z) = (map.offsets()[k], map.offsets()[k + 1]);
        let got: Vec<(usize, u32)> = (a..z)
            .map(|e| (map.logit_rows()[e] as usize, map.targets()[e]))
            .collect();
        assert_eq!(
            &got, list,
            "log-prob entries of sample {} completion {}",
            key.0, key.1
        );
        for &(row, _) in list {
            assert!(row < want.rows * n);
        }
    }
    assert_eq!(map.logit_rows().len(), *map.offsets().last().unwrap());

    let mut got_cuts: Vec<Cut> = b
        .truncations()
        .iter()
        .map(|t| (t.sample, t.completion, t.kept, t.cut))
        .collect();
    got_cuts.sort_unstable();
    let mut want_cuts = cuts.to_vec();
    want_cuts.sort_unstable();
    assert_eq!(got_cuts, want_cuts, "truncations");
}
