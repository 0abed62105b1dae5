//! Helpers shared by the integration tests: seeded random layouts built with the row builders.
#![allow(dead_code)] // each test binary uses a different subset

use prefix_attn::layout::{Row, RowBuilder, Tree};
use rand::rngs::StdRng;
use rand::Rng;

/// A random tree of up to `max_nodes` segments of 1..=`max_seg` tokens, each node hung under a
/// random earlier node (so depth, fan-out and leaf order all vary).
pub fn random_tree(rng: &mut StdRng, max_nodes: usize, max_seg: usize) -> Tree {
    let mut tree = Tree::new(rng.random_range(1..=max_seg)).unwrap();
    let nodes = rng.random_range(1..=max_nodes);
    for id in 1..nodes {
        let parent = rng.random_range(0..id);
        tree.add_child(parent, rng.random_range(1..=max_seg))
            .unwrap();
    }
    tree
}

/// Lengths of a prompt and 1..=`max_k` completions, each 1..=`max_seg`.
pub fn random_prefix_k(rng: &mut StdRng, max_k: usize, max_seg: usize) -> (usize, Vec<usize>) {
    let k = rng.random_range(1..=max_k);
    let prompt = rng.random_range(1..=max_seg);
    (
        prompt,
        (0..k).map(|_| rng.random_range(1..=max_seg)).collect(),
    )
}

/// A builder holding about `target` tokens: documents, prefix + k samples, trees and padding
/// appended in random order.
pub fn random_builder(rng: &mut StdRng, target: usize, max_seg: usize) -> RowBuilder {
    let mut b = RowBuilder::new();
    while b.len() < target {
        match rng.random_range(0..10) {
            0..=2 => {
                b.document(rng.random_range(1..=2 * max_seg)).unwrap();
            }
            3..=5 => {
                let (p, c) = random_prefix_k(rng, 4, max_seg);
                b.prefix_completions(p, &c).unwrap();
            }
            6..=8 => {
                let t = random_tree(rng, 6, max_seg);
                b.tree(t).unwrap();
            }
            _ => b.padding(rng.random_range(1..=max_seg)).unwrap(),
        }
    }
    b
}

/// A random row of about `target` tokens (see [`random_builder`]), padded by 0..=`extra_pad`
/// more tokens.
pub fn random_row(rng: &mut StdRng, target: usize, max_seg: usize, extra_pad: usize) -> Row {
    let b = random_builder(rng, target, max_seg);
    let n = b.len() + rng.random_range(0..=extra_pad);
    b.finish(n).unwrap()
}

/// `rows` random rows sharing one length (the longest content plus 0..=`extra_pad`).
pub fn random_batch(
    rng: &mut StdRng,
    rows: usize,
    target: usize,
    max_seg: usize,
    extra_pad: usize,
) -> Vec<Row> {
    let builders: Vec<RowBuilder> = (0..rows)
        .map(|_| {
            let t = rng.random_range(1..=target);
            random_builder(rng, t, max_seg)
        })
        .collect();
    let n = builders.iter().map(RowBuilder::len).max().unwrap() + rng.random_range(0..=extra_pad);
    builders.into_iter().map(|b| b.finish(n).unwrap()).collect()
}
