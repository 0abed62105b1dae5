//! Trees of segments, laid out the README's way: node 0 is the root, children keep their
//! insertion order, the row holds the nodes in DFS preorder; a token's `vis_end` is the end of
//! its segment's subtree and its position continues from the end of its parent's segment (so it
//! equals its index in the root-to-leaf sequence). A causal document is a tree of one node, a
//! prompt with k completions a root with k leaves.

/// One segment: its parent (None for the root) and its length in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seg {
    pub parent: Option<usize>,
    pub len: usize,
}

/// A tree as a list of segments in the order they were added (parents before children).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    pub segs: Vec<Seg>,
}

/// Where a node landed: its first token, the end of its subtree, the position id of its first
/// token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub start: usize,
    pub subtree_end: usize,
    pub pos0: usize,
}

impl Shape {
    pub fn root(len: usize) -> Self {
        Shape {
            segs: vec![Seg { parent: None, len }],
        }
    }

    /// A prompt and one leaf per completion.
    pub fn prefix_completions(prompt: usize, completions: &[usize]) -> Self {
        let mut s = Self::root(prompt);
        for &c in completions {
            s.segs.push(Seg {
                parent: Some(0),
                len: c,
            });
        }
        s
    }

    pub fn nodes(&self) -> usize {
        self.segs.len()
    }

    /// Children of `v`, in insertion order.
    pub fn children(&self, v: usize) -> Vec<usize> {
        (0..self.nodes())
            .filter(|&u| self.segs[u].parent == Some(v))
            .collect()
    }

    /// DFS preorder from the root, children in insertion order.
    pub fn preorder(&self) -> Vec<usize> {
        fn walk(s: &Shape, v: usize, out: &mut Vec<usize>) {
            out.push(v);
            for c in s.children(v) {
                walk(s, c, out);
            }
        }
        let mut out = Vec::new();
        walk(self, 0, &mut out);
        out
    }

    /// Leaves in preorder: one root-to-leaf sequence (completion) each.
    pub fn leaves(&self) -> Vec<usize> {
        self.preorder()
            .into_iter()
            .filter(|&v| self.children(v).is_empty())
            .collect()
    }

    /// Nodes from the root to `v`.
    pub fn path(&self, v: usize) -> Vec<usize> {
        let mut p = vec![v];
        while let Some(u) = self.segs[*p.last().unwrap()].parent {
            p.push(u);
        }
        p.reverse();
        p
    }

    /// Tokens of the whole tree, if the sum fits a usize.
    pub fn total(&self) -> Option<usize> {
        self.segs
            .iter()
            .try_fold(0usize, |a, s| a.checked_add(s.len))
    }

    /// Tokens of `v`'s subtree.
    pub fn subtree_len(&self, v: usize) -> usize {
        self.segs[v].len
            + self
                .children(v)
                .into_iter()
                .map(|c| self.subtree_len(c))
                .sum::<usize>()
    }

    /// Tokens on the path above `v` (the position id of `v`'s first token).
    pub fn depth(&self, v: usize) -> usize {
        let p = self.path(v);
        let d = p[..p.len() - 1].iter().map(|&u| self.segs[u].len).sum();
        if crate::planted("position") && p.len() > 2 {
            return d + 1;
        }
        d
    }

    /// Every node laid out in preorder from token `start`, by node id.
    pub fn place(&self, start: usize) -> Vec<Placed> {
        let mut out = vec![
            Placed {
                start: 0,
                subtree_end: 0,
                pos0: 0
            };
            self.nodes()
        ];
        let mut at = start;
        for v in self.preorder() {
            out[v] = Placed {
                start: at,
                subtree_end: at + self.subtree_len(v),
                pos0: self.depth(v),
            };
            at += self.segs[v].len;
        }
        out
    }

    /// Per token of the laid-out tree (row order): (`vis_end`, position id, node).
    pub fn tokens(&self, start: usize) -> Vec<(i32, i32, usize)> {
        let placed = self.place(start);
        let mut out = Vec::new();
        for v in self.preorder() {
            for t in 0..self.segs[v].len {
                out.push((placed[v].subtree_end as i32, (placed[v].pos0 + t) as i32, v));
            }
        }
        out
    }
}
