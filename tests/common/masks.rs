//! `vis_end` rows for the layouts trainers use. Every builder pads the row to `n` with
//! `vis_end[j] = j` (visible to nobody).

/// Pads `v` to `n` tokens.
fn pad(mut v: Vec<i32>, n: usize) -> Vec<i32> {
    assert!(
        v.len() <= n,
        "layout of {} tokens does not fit n = {n}",
        v.len()
    );
    while v.len() < n {
        let j = v.len() as i32;
        v.push(j);
    }
    v
}

/// One causal document of `len` tokens, then padding.
pub fn causal(len: usize, n: usize) -> Vec<i32> {
    pad(vec![len as i32; len], n)
}

/// Documents packed back to back (each causal within itself), then padding.
pub fn packed(docs: &[usize], n: usize) -> Vec<i32> {
    let mut v = Vec::new();
    for &d in docs {
        let end = (v.len() + d) as i32;
        v.extend(std::iter::repeat_n(end, d));
    }
    pad(v, n)
}

/// Groups of a prompt followed by its completions: every completion sees the prompt and itself,
/// not its siblings. `groups` = [(prompt, [completion lengths])].
pub fn prefix_groups(groups: &[(usize, &[usize])], n: usize) -> Vec<i32> {
    let mut v = Vec::new();
    for &(prompt, completions) in groups {
        let end = v.len() + prompt + completions.iter().sum::<usize>();
        v.extend(std::iter::repeat_n(end as i32, prompt));
        for &c in completions {
            let ce = (v.len() + c) as i32;
            v.extend(std::iter::repeat_n(ce, c));
        }
    }
    pad(v, n)
}

/// A tree node: `len` tokens, then its children, laid out in DFS preorder.
pub struct Node {
    pub len: usize,
    pub children: Vec<Node>,
}

pub fn node(len: usize, children: Vec<Node>) -> Node {
    Node { len, children }
}

/// A tree in DFS preorder: a token sees its ancestors' tokens and the earlier tokens of its own
/// node, i.e. `vis_end` of a node's tokens is the end of its subtree.
pub fn tree(root: &Node, n: usize) -> Vec<i32> {
    fn size(nd: &Node) -> usize {
        nd.len + nd.children.iter().map(size).sum::<usize>()
    }
    fn emit(nd: &Node, v: &mut Vec<i32>) {
        let end = (v.len() + size(nd)) as i32;
        v.extend(std::iter::repeat_n(end, nd.len));
        for c in &nd.children {
            emit(c, v);
        }
    }
    let mut v = Vec::new();
    emit(root, &mut v);
    pad(v, n)
}

/// Nothing visible: every query of the row has output 0 and LSE -inf.
pub fn all_padding(n: usize) -> Vec<i32> {
    pad(Vec::new(), n)
}
