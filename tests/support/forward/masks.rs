//! `vis_end` rows for the forward cases, built with the crate's row builders
//! ([`prefix_attn::layout`]); every row is padded to `n` (`vis_end[j] = j`, seen by nobody).

use prefix_attn::layout::{RowBuilder, Tree};

fn finish(b: RowBuilder, n: usize) -> Vec<i32> {
    b.finish(n).expect("valid test layout").vis_end().to_vec()
}

/// One causal document of `len` tokens, then padding.
pub fn causal(len: usize, n: usize) -> Vec<i32> {
    packed(&[len], n)
}

/// Documents packed back to back (each causal within itself), then padding.
pub fn packed(docs: &[usize], n: usize) -> Vec<i32> {
    let mut b = RowBuilder::new();
    for &d in docs {
        b.document(d).unwrap();
    }
    finish(b, n)
}

/// Groups of a prompt followed by its completions: every completion sees the prompt and itself,
/// not its siblings. `groups` = [(prompt, [completion lengths])].
pub fn prefix_groups(groups: &[(usize, &[usize])], n: usize) -> Vec<i32> {
    let mut b = RowBuilder::new();
    for &(prompt, completions) in groups {
        b.prefix_completions(prompt, completions).unwrap();
    }
    finish(b, n)
}

/// A tree node: `len` tokens, then its children (DFS preorder).
pub struct Node {
    pub len: usize,
    pub children: Vec<Node>,
}

pub fn node(len: usize, children: Vec<Node>) -> Node {
    Node { len, children }
}

/// A tree in DFS preorder: a token sees its ancestors' tokens and the earlier tokens of its own
/// node.
pub fn tree(root: &Node, n: usize) -> Vec<i32> {
    fn add(t: &mut Tree, parent: usize, nd: &Node) {
        let id = t.add_child(parent, nd.len).unwrap();
        for c in &nd.children {
            add(t, id, c);
        }
    }
    let mut t = Tree::new(root.len).unwrap();
    for c in &root.children {
        add(&mut t, 0, c);
    }
    let mut b = RowBuilder::new();
    b.tree(t).unwrap();
    finish(b, n)
}

/// Nothing visible: every query of the row has output 0 and LSE -inf.
pub fn all_padding(n: usize) -> Vec<i32> {
    let mut b = RowBuilder::new();
    b.padding(n).unwrap();
    finish(b, n)
}
