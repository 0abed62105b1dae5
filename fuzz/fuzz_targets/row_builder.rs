//! `RowBuilder` and `Tree` against an independent layout of the same items by the README's
//! table: documents, prompts with completions, trees in DFS preorder and padding give the
//! `vis_end`, position ids, roles, items, placements and unshared sequences the table says, and
//! every token of every unshared sequence sees exactly that sequence so far. Bad items (empty
//! segments, no completions, a parent that does not exist, more than `MAX_ROW_TOKENS` tokens, a
//! row length below the content) are their typed errors and leave the builder as it was.
#![no_main]
// Node ids index several parallel arrays (the crate's and the model's) at once.
#![allow(clippy::needless_range_loop)]

use fuzz_oracle::input::Input;
use fuzz_oracle::note;
use fuzz_oracle::rule::{first_invalid, sees};
use fuzz_oracle::tree::{Seg, Shape};
use libfuzzer_sys::fuzz_target;
use prefix_attn::layout::{ItemKind, Role, RowBuilder, Tree, MAX_ROW_TOKENS};
use prefix_attn::Error;

/// A segment length: mostly small, sometimes 0, sometimes more than a row may hold (never
/// between, so nothing large is ever allocated).
fn seg_len(inp: &mut Input, max: usize) -> usize {
    match inp.byte() {
        0..=219 => inp.int(1, max),
        220..=239 => 0,
        240..=249 => MAX_ROW_TOKENS + inp.int(1, 3),
        _ => inp.pick(&[usize::MAX / 2 + 1, usize::MAX - 1, usize::MAX]),
    }
}

/// An item placed by the model: its kind and shape.
struct Placed {
    kind: ItemKind,
    shape: Shape,
    start: usize,
}

fn role(kind: ItemKind, node: usize) -> Role {
    match kind {
        ItemKind::Document => Role::Document,
        ItemKind::PrefixCompletions if node == 0 => Role::Prompt,
        ItemKind::PrefixCompletions => Role::Completion(node - 1),
        ItemKind::Tree => Role::Node(node),
    }
}

fn is_segment_error(e: &Error, what: &str, idx: usize) -> bool {
    matches!(e, Error::InvalidSegment { what: w, index, .. } if *w == what && *index == idx)
}

fn too_long(e: &Error, tokens: u128) -> bool {
    matches!(e, Error::RowTooLong { tokens: t, max, .. } if *t == tokens && *max == MAX_ROW_TOKENS)
}

/// The tree's accessors against the model's shape (only for trees whose length fits a usize).
fn check_tree(t: &Tree, s: &Shape) {
    assert_eq!(t.node_count(), s.nodes());
    for v in 0..s.nodes() {
        assert_eq!(t.segment_len(v), s.segs[v].len);
        assert_eq!(t.parent(v), s.segs[v].parent);
        assert_eq!(t.children(v), &s.children(v)[..]);
        assert_eq!(t.is_leaf(v), s.children(v).is_empty());
        assert_eq!(t.path_to(v), s.path(v));
    }
    assert_eq!(t.preorder(), s.preorder());
    assert_eq!(t.leaves(), s.leaves());
    let total = s.total().expect("checked by the caller");
    assert_eq!(t.total_len(), total);
    if total <= 1 << 20 {
        let start = 7;
        let p = t.place(start);
        let want = s.place(start);
        for v in 0..s.nodes() {
            assert_eq!(
                (p.seg_start[v], p.subtree_end[v], p.depth_offset[v]),
                (want[v].start, want[v].subtree_end, want[v].pos0),
                "placement of node {v}"
            );
        }
    }
}

/// Builds a tree from the input with `Tree::new` / `add_child`, checking each refusal.
fn gen_tree(inp: &mut Input) -> Option<(Tree, Shape)> {
    let root = seg_len(inp, 12);
    let mut t = match Tree::new(root) {
        Ok(t) => {
            assert!(root > 0);
            t
        }
        Err(e) => {
            assert_eq!(root, 0, "{e:?}");
            assert!(is_segment_error(&e, "tree node", 0), "{e:?}");
            return None;
        }
    };
    let mut s = Shape::root(root);
    for _ in 0..inp.int(0, 7) {
        let id = s.nodes();
        let parent = if inp.chance(235) {
            inp.int(0, id - 1)
        } else {
            inp.int(id, id + 2)
        };
        let len = seg_len(inp, 10);
        let before = t.clone();
        match t.add_child(parent, len) {
            Ok(got) => {
                assert!(
                    parent < id && len > 0,
                    "accepted add_child({parent}, {len})"
                );
                assert_eq!(got, id);
                s.segs.push(Seg {
                    parent: Some(parent),
                    len,
                });
            }
            Err(e) => {
                assert!(
                    parent >= id || len == 0,
                    "refused add_child({parent}, {len}): {e:?}"
                );
                assert!(is_segment_error(&e, "tree node", id), "{e:?}");
                assert_eq!(t, before, "a refused add_child changed the tree");
            }
        }
    }
    Some((t, s))
}

fuzz_target!(|bytes: &[u8]| {
    let mut inp = Input::new(bytes);
    let mut b = RowBuilder::new();
    let mut items: Vec<Placed> = Vec::new();
    // Per token: (vis_end, position, item, role).
    let mut toks: Vec<(i32, i32, Option<usize>, Role)> = Vec::new();

    for _ in 0..inp.int(0, 8) {
        let (cur, count) = (toks.len(), items.len());
        // What to append, as the model sees it: Ok(kind, shape) or the expected error.
        let outcome: Result<Option<(ItemKind, Shape)>, Error> = match inp.int(0, 3) {
            0 => {
                let len = seg_len(&mut inp, 30);
                let got = b.document(len);
                if len == 0 {
                    let e = got.expect_err("document(0)");
                    assert!(is_segment_error(&e, "document", count), "{e:?}");
                    Err(e)
                } else if len > MAX_ROW_TOKENS - cur {
                    let e = got.expect_err("document too long");
                    assert!(too_long(&e, cur as u128 + len as u128), "{e:?}");
                    Err(e)
                } else {
                    assert_eq!(got, Ok(count));
                    Ok(Some((ItemKind::Document, Shape::root(len))))
                }
            }
            1 => {
                let prompt = seg_len(&mut inp, 12);
                let lens: Vec<usize> = (0..inp.int(0, 4)).map(|_| seg_len(&mut inp, 10)).collect();
                let shape = Shape::prefix_completions(prompt, &lens);
                let bad = prompt == 0 || lens.is_empty() || lens.contains(&0);
                let got = b.prefix_completions(prompt, &lens);
                if bad {
                    let e = got.expect_err("bad prefix + completions");
                    assert!(is_segment_error(&e, "row item", count), "{e:?}");
                    Err(e)
                } else if shape.total().is_none() {
                    let e = got.expect_err("more than usize::MAX tokens");
                    assert!(matches!(e, Error::RowTooLong { .. }), "{e:?}");
                    Err(e)
                } else {
                    let total = shape.total().unwrap();
                    if total > MAX_ROW_TOKENS - cur {
                        let e = got.expect_err("prefix + completions too long");
                        assert!(too_long(&e, cur as u128 + total as u128), "{e:?}");
                        Err(e)
                    } else {
                        assert_eq!(got, Ok(count));
                        Ok(Some((ItemKind::PrefixCompletions, shape)))
                    }
                }
            }
            2 => match gen_tree(&mut inp) {
                None => Ok(None),
                Some((t, shape)) => match shape.total() {
                    None => {
                        let e = b.tree(t).expect_err("more than usize::MAX tokens");
                        assert!(matches!(e, Error::RowTooLong { .. }), "{e:?}");
                        Err(e)
                    }
                    Some(total) => {
                        check_tree(&t, &shape);
                        let got = b.tree(t);
                        if total > MAX_ROW_TOKENS - cur {
                            let e = got.expect_err("tree too long");
                            assert!(too_long(&e, cur as u128 + total as u128), "{e:?}");
                            Err(e)
                        } else {
                            assert_eq!(got, Ok(count));
                            Ok(Some((ItemKind::Tree, shape)))
                        }
                    }
                },
            },
            _ => {
                let len = if inp.chance(240) {
                    inp.int(0, 12)
                } else {
                    seg_len(&mut inp, 1)
                };
                let got = b.padding(len);
                if len > MAX_ROW_TOKENS - cur {
                    let e = got.expect_err("padding too long");
                    assert!(too_long(&e, cur as u128 + len as u128), "{e:?}");
                    Err(e)
                } else {
                    got.expect("padding");
                    for j in cur..cur + len {
                        toks.push((j as i32, 0, None, Role::Padding));
                    }
                    Ok(None)
                }
            }
        };
        match outcome {
            Ok(Some((kind, shape))) => {
                for (vis, pos, v) in shape.tokens(cur) {
                    toks.push((vis, pos, Some(count), role(kind, v)));
                }
                items.push(Placed {
                    kind,
                    shape,
                    start: cur,
                });
            }
            Ok(None) => {}
            Err(_) => {
                assert_eq!(b.len(), cur, "a refused item changed the row");
            }
        }
        assert_eq!((b.len(), b.item_count()), (toks.len(), items.len()));
        assert_eq!(b.is_empty(), toks.is_empty());
    }

    let len = toks.len();
    let n = match inp.byte() {
        0..=219 => len + inp.int(0, 10),
        220..=239 => inp.int(0, len),
        _ => MAX_ROW_TOKENS + inp.int(1, 2),
    };
    let got = b.finish(n);
    if n < len {
        note("finish: below the content");
        assert!(
            matches!(got, Err(Error::LengthMismatch { expected, got: g, .. }) if expected == n && g == len),
            "{got:?}"
        );
        return;
    }
    if n > MAX_ROW_TOKENS {
        assert!(
            matches!(got, Err(ref e) if too_long(e, n as u128)),
            "{got:?}"
        );
        return;
    }
    if n == 0 {
        assert_eq!(got, Err(Error::EmptyRow { row: 0 }));
        return;
    }
    let row = got.expect("finish");
    note(match items.len() {
        0 => "row: no item",
        1 => "row: one item",
        _ => "row: several items",
    });
    for j in len..n {
        toks.push((j as i32, 0, None, Role::Padding));
    }
    let vis: Vec<i32> = toks.iter().map(|t| t.0).collect();
    let pos: Vec<i32> = toks.iter().map(|t| t.1).collect();
    assert_eq!(first_invalid(&vis), None, "the model built an invalid row");
    assert_eq!(row.len(), n);
    assert_eq!(row.vis_end(), &vis[..], "vis_end");
    assert_eq!(row.positions(), &pos[..], "positions");
    for (j, t) in row.tokens().iter().enumerate() {
        assert_eq!((t.item, t.role), (toks[j].2, toks[j].3), "token {j}");
    }
    assert_eq!(row.items().len(), items.len());
    let real: usize = items.iter().map(|it| it.shape.total().unwrap()).sum();
    assert_eq!(row.real_tokens(), real);

    let mut want_paired = Vec::new();
    for (k, (got, it)) in row.items().iter().zip(&items).enumerate() {
        assert_eq!(
            (got.kind(), got.index(), got.start()),
            (it.kind, k, it.start)
        );
        assert_eq!(got.len(), it.shape.total().unwrap());
        let placed = it.shape.place(it.start);
        for v in 0..it.shape.nodes() {
            assert_eq!(got.tree().segment_len(v), it.shape.segs[v].len);
            assert_eq!(got.tree().parent(v), it.shape.segs[v].parent);
            assert_eq!(got.role_of(v), role(it.kind, v));
            let p = got.placement();
            assert_eq!(
                (p.seg_start[v], p.subtree_end[v], p.depth_offset[v]),
                (placed[v].start, placed[v].subtree_end, placed[v].pos0)
            );
        }
        for leaf in it.shape.leaves() {
            let shared: Vec<usize> = it
                .shape
                .path(leaf)
                .into_iter()
                .flat_map(|v| placed[v].start..placed[v].start + it.shape.segs[v].len)
                .collect();
            want_paired.push((k, leaf, shared));
        }
    }
    let paired = row.paired();
    let got_paired: Vec<_> = paired
        .iter()
        .map(|p| (p.item, p.leaf, p.shared.clone()))
        .collect();
    assert_eq!(got_paired, want_paired, "unshared sequences");
    for p in &paired {
        let l = p.shared.len();
        let causal: Vec<i32> = (0..n)
            .map(|j| if j < l { l as i32 } else { j as i32 })
            .collect();
        assert_eq!(p.causal_vis_end(n), causal);
        assert_eq!(p.gather(&pos, 1), (0..l as i32).collect::<Vec<_>>());
        // The rule: token t of the sequence sees exactly the sequence's tokens 0..=t.
        for (t, &q) in p.shared.iter().enumerate() {
            let seen: Vec<usize> = (0..n).filter(|&j| sees(&vis, q, j)).collect();
            let mut want = p.shared[..=t].to_vec();
            want.sort_unstable();
            assert_eq!(seen, want, "item {} leaf {} token {t}", p.item, p.leaf);
        }
    }
    assert_eq!(row.into_parts(), (vis, pos));
});
