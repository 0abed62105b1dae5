//! Row builders against brute force: every (query, key) pair of random rows is checked against
//! visibility derived independently from what was appended (prompt sees prompt causally, a
//! completion sees the prompt and itself causally and never another completion, a tree node sees
//! exactly its ancestors and itself causally, packed items never see each other, padding is seen
//! by nobody), and so are position ids and the unshared index maps.

use crate::common;

use prefix_attn::layout::{ItemKind, PairedSeq, Role, Row, RowBuilder, Tree};
use prefix_attn::mask::rule::validate_row;
use prefix_attn::mask::visible;
use prefix_attn::Error;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the test appended, kept so expectations never come from the builder itself.
enum Plan {
    Doc(usize),
    PrefixK(usize, Vec<usize>),
    Tree(Tree),
    Pad(usize),
}

/// The expected facts of one token, derived from the plan.
#[derive(Clone)]
struct Expect {
    item: Option<usize>,
    /// Tree nodes from the root down to the token's own node (empty for padding).
    chain: Vec<usize>,
    offset: usize,
    position: usize,
    role: Role,
}

fn preorder(tree: &Tree, v: usize, out: &mut Vec<usize>) {
    out.push(v);
    for &c in tree.children(v) {
        preorder(tree, c, out);
    }
}

fn expected_tokens(plan: &[Plan], n: usize) -> Vec<Expect> {
    let mut out = Vec::new();
    let mut item = 0;
    for p in plan {
        let tree = match p {
            Plan::Pad(len) => {
                for _ in 0..*len {
                    out.push(pad());
                }
                continue;
            }
            Plan::Doc(len) => Tree::new(*len).unwrap(),
            Plan::PrefixK(pl, cs) => Tree::prefix_completions(0, *pl, cs).unwrap(),
            Plan::Tree(t) => t.clone(),
        };
        let mut order = Vec::new();
        preorder(&tree, 0, &mut order);
        for v in order {
            let mut chain = vec![v];
            while let Some(p) = tree.parent(*chain.last().unwrap()) {
                chain.push(p);
            }
            chain.reverse();
            let base: usize = chain[..chain.len() - 1]
                .iter()
                .map(|&a| tree.segment_len(a))
                .sum();
            let role = match p {
                Plan::Doc(_) => Role::Document,
                Plan::PrefixK(..) if v == 0 => Role::Prompt,
                Plan::PrefixK(..) => Role::Completion(v - 1),
                _ => Role::Node(v),
            };
            for t in 0..tree.segment_len(v) {
                out.push(Expect {
                    item: Some(item),
                    chain: chain.clone(),
                    offset: t,
                    position: base + t,
                    role,
                });
            }
        }
        item += 1;
    }
    while out.len() < n {
        out.push(pad());
    }
    out
}

fn pad() -> Expect {
    Expect {
        item: None,
        chain: vec![],
        offset: 0,
        position: 0,
        role: Role::Padding,
    }
}

/// Query token `a` sees key token `b`: same item, `b`'s node on `a`'s root path, causal within
/// one node.
fn expect_visible(a: &Expect, b: &Expect) -> bool {
    let (Some(ia), Some(ib)) = (a.item, b.item) else {
        return false;
    };
    if ia != ib {
        return false;
    }
    let bn = *b.chain.last().unwrap();
    let an = *a.chain.last().unwrap();
    a.chain.contains(&bn) && (bn != an || b.offset <= a.offset)
}

fn random_plan(rng: &mut StdRng, target: usize) -> Vec<Plan> {
    let mut plan = Vec::new();
    let mut len = 0;
    while len < target {
        let p = match rng.random_range(0..4) {
            0 => Plan::Doc(rng.random_range(1..=9)),
            1 => {
                let (p, c) = common::random_prefix_k(rng, 5, 6);
                Plan::PrefixK(p, c)
            }
            2 => Plan::Tree(common::random_tree(rng, 7, 5)),
            _ => Plan::Pad(rng.random_range(1..=4)),
        };
        len += match &p {
            Plan::Doc(l) | Plan::Pad(l) => *l,
            Plan::PrefixK(pl, cs) => pl + cs.iter().sum::<usize>(),
            Plan::Tree(t) => t.total_len(),
        };
        plan.push(p);
    }
    plan
}

fn build(plan: &[Plan], n: usize) -> Row {
    let mut b = RowBuilder::new();
    for p in plan {
        match p {
            Plan::Doc(l) => {
                b.document(*l).unwrap();
            }
            Plan::PrefixK(pl, cs) => {
                b.prefix_completions(*pl, cs).unwrap();
            }
            Plan::Tree(t) => {
                b.tree(t.clone()).unwrap();
            }
            Plan::Pad(l) => b.padding(*l).unwrap(),
        }
    }
    b.finish(n).unwrap()
}

fn check_row(row: &Row, expect: &[Expect]) {
    let n = row.len();
    assert_eq!(expect.len(), n);
    validate_row(0, row.vis_end()).unwrap();
    for i in 0..n {
        assert_eq!(
            row.positions()[i] as usize,
            expect[i].position,
            "position of {i}"
        );
        assert_eq!(row.tokens()[i].item, expect[i].item, "item of {i}");
        assert_eq!(row.tokens()[i].role, expect[i].role, "role of {i}");
        if expect[i].item.is_none() {
            assert_eq!(row.vis_end()[i] as usize, i, "padding vis_end[{i}]");
        }
        for j in 0..n {
            assert_eq!(
                visible(row.vis_end(), i, j),
                expect_visible(&expect[i], &expect[j]),
                "query {i} key {j}: vis_end {:?}",
                row.vis_end()
            );
        }
    }
}

/// Every unshared sequence: positions are 0..len, its causal mask is the shared row's mask on the
/// mapped tokens, and each shared token sees exactly the mapped tokens at or before it.
fn check_paired(row: &Row) {
    let seqs: Vec<PairedSeq> = row.paired();
    let mut copies = vec![0usize; row.len()];
    for seq in &seqs {
        let item = &row.items()[seq.item];
        assert!(item.tree().is_leaf(seq.leaf));
        for (t, &s) in seq.shared.iter().enumerate() {
            copies[s] += 1;
            assert_eq!(row.tokens()[s].item, Some(seq.item));
            assert_eq!(row.positions()[s] as usize, t, "unshared position");
            let seen: Vec<usize> = (0..row.len())
                .filter(|&j| visible(row.vis_end(), s, j))
                .collect();
            let mut want = seq.shared[..=t].to_vec();
            want.sort_unstable();
            assert_eq!(seen, want, "shared token {s} = unshared token {t}");
        }
        let alone = seq.causal_vis_end(seq.len() + 2);
        validate_row(0, &alone).unwrap();
        for a in 0..seq.len() {
            for b in 0..seq.len() {
                assert_eq!(visible(&alone, a, b), b <= a);
            }
        }
    }
    // Each real token is copied once per leaf below its segment; padding never.
    for (i, tok) in row.tokens().iter().enumerate() {
        let want = match tok.item {
            None => 0,
            Some(it) => {
                let tree = row.items()[it].tree();
                let node = tok.role.node().unwrap();
                tree.leaves()
                    .into_iter()
                    .filter(|&l| tree.path_to(l).contains(&node))
                    .count()
            }
        };
        assert_eq!(copies[i], want, "copies of token {i}");
    }
}

#[test]
fn random_rows_match_brute_force() {
    let mut rng = StdRng::seed_from_u64(0x1a70_u64);
    for _ in 0..300 {
        let target = rng.random_range(1..70);
        let plan = random_plan(&mut rng, target);
        let len: usize = expected_tokens(&plan, 0).len();
        let n = len + rng.random_range(0..5);
        let row = build(&plan, n);
        check_row(&row, &expected_tokens(&plan, n));
        check_paired(&row);
        assert_eq!(
            row.real_tokens(),
            row.tokens().iter().filter(|t| t.item.is_some()).count()
        );
    }
}

#[test]
fn causal_row_sees_everything_before() {
    let mut b = RowBuilder::new();
    b.document(7).unwrap();
    let row = b.finish(7).unwrap();
    assert_eq!(row.vis_end(), &[7; 7]);
    assert_eq!(row.positions(), &[0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(row.items()[0].kind(), ItemKind::Document);
}

#[test]
fn packed_documents_restart_positions() {
    let mut b = RowBuilder::new();
    b.document(3).unwrap();
    b.document(2).unwrap();
    let row = b.finish(7).unwrap();
    assert_eq!(row.vis_end(), &[3, 3, 3, 5, 5, 5, 6]);
    assert_eq!(row.positions(), &[0, 1, 2, 0, 1, 0, 0]);
}

#[test]
fn completions_start_at_prompt_length() {
    let mut b = RowBuilder::new();
    b.prefix_completions(3, &[2, 4, 1]).unwrap();
    let row = b.finish(10).unwrap();
    assert_eq!(row.vis_end(), &[10, 10, 10, 5, 5, 9, 9, 9, 9, 10]);
    assert_eq!(row.positions(), &[0, 1, 2, 3, 4, 3, 4, 5, 6, 3]);
    let seqs = row.paired();
    assert_eq!(seqs.len(), 3);
    assert_eq!(seqs[1].shared, vec![0, 1, 2, 5, 6, 7, 8]);
    assert_eq!(seqs[2].shared, vec![0, 1, 2, 9]);
}

#[test]
fn bad_layouts_are_typed_errors() {
    let mut b = RowBuilder::new();
    b.document(2).unwrap();
    for (prompt, completions) in [(0, &[1][..]), (2, &[]), (2, &[3, 0])] {
        assert!(matches!(
            b.prefix_completions(prompt, completions),
            Err(Error::InvalidSegment {
                what: "row item",
                index: 1,
                ..
            })
        ));
    }
    assert!(matches!(
        b.document(0),
        Err(Error::InvalidSegment {
            what: "document",
            index: 1,
            ..
        })
    ));
    assert!(matches!(
        Tree::new(0),
        Err(Error::InvalidSegment {
            what: "tree node",
            index: 0,
            ..
        })
    ));
    let mut t = Tree::new(1).unwrap();
    assert!(matches!(
        t.add_child(0, 0),
        Err(Error::InvalidSegment { index: 1, .. })
    ));
    assert!(matches!(
        t.add_child(5, 1),
        Err(Error::InvalidSegment { index: 1, .. })
    ));
    // A failed append leaves the builder as it was.
    assert_eq!(b.len(), 2);
    b.padding(0).unwrap();
    assert_eq!(b.len(), 2);
    b.prefix_completions(2, &[2]).unwrap();
    assert!(matches!(
        b.clone().finish(5),
        Err(Error::LengthMismatch {
            expected: 5,
            got: 6,
            ..
        })
    ));
    assert_eq!(b.finish(6).unwrap().len(), 6);
    assert!(matches!(
        RowBuilder::new().finish(0),
        Err(Error::EmptyRow { .. })
    ));
}
