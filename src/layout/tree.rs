//! Trees of segments: the one shape behind every layout. A causal document is a tree of one node;
//! a prompt with k completions is a root with k leaf children; a multi-turn conversation that
//! branches is a deeper tree. Laid out in DFS preorder, a node's tokens are seen by exactly the
//! tokens of its own subtree, which is one contiguous range: so one `vis_end` per key (the end of
//! the key's subtree) expresses it.

use crate::error::{Error, Result};

/// A rooted tree of non-empty token segments. Node 0 is the root; nodes are numbered in the order
/// they were added, children keep their insertion order in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    len: Vec<usize>,
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
}

impl Tree {
    /// A tree whose root segment has `root_len` tokens.
    pub fn new(root_len: usize) -> Result<Self> {
        check_len(0, root_len)?;
        Ok(Self {
            len: vec![root_len],
            parent: vec![None],
            children: vec![Vec::new()],
        })
    }

    /// Adds a segment of `len` tokens under `parent`; returns the new node's id.
    pub fn add_child(&mut self, parent: usize, len: usize) -> Result<usize> {
        let id = self.len.len();
        if parent >= id {
            return Err(Error::InvalidSegment {
                what: "tree node",
                index: id,
                detail: format!("parent {parent} does not exist (the tree has {id} nodes)"),
            });
        }
        check_len(id, len)?;
        self.len.push(len);
        self.parent.push(Some(parent));
        self.children.push(Vec::new());
        self.children[parent].push(id);
        Ok(id)
    }

    /// A prompt of `prompt_len` tokens with one leaf child per completion. Node 0 is the prompt,
    /// node `c + 1` is completion `c`. `sample` only labels errors.
    pub fn prefix_completions(
        sample: usize,
        prompt_len: usize,
        completion_lens: &[usize],
    ) -> Result<Self> {
        if prompt_len == 0 {
            return Err(Error::EmptyPrompt { sample });
        }
        if completion_lens.is_empty() {
            return Err(Error::NoCompletions { sample });
        }
        if let Some(c) = completion_lens.iter().position(|&l| l == 0) {
            return Err(Error::EmptyCompletion {
                sample,
                completion: c,
            });
        }
        let mut tree = Self::new(prompt_len)?;
        for &l in completion_lens {
            tree.add_child(0, l)?;
        }
        Ok(tree)
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.len.len()
    }

    /// Tokens of node `node`'s own segment.
    pub fn segment_len(&self, node: usize) -> usize {
        self.len[node]
    }

    /// The parent of `node` (`None` for the root).
    pub fn parent(&self, node: usize) -> Option<usize> {
        self.parent[node]
    }

    /// The children of `node`, in layout order.
    pub fn children(&self, node: usize) -> &[usize] {
        &self.children[node]
    }

    /// Whether `node` has no children.
    pub fn is_leaf(&self, node: usize) -> bool {
        self.children[node].is_empty()
    }

    /// Tokens of the whole tree (every segment once): its length in a shared row. Saturates at
    /// `usize::MAX` (segment lengths are not bounded one by one; a row is, and refuses such a
    /// tree with `RowTooLong`).
    pub fn total_len(&self) -> usize {
        self.len.iter().fold(0usize, |a, &l| a.saturating_add(l))
    }

    /// [`Tree::total_len`] without saturation: the exact sum, for error messages and checks.
    pub(crate) fn total_len_exact(&self) -> u128 {
        self.len.iter().map(|&l| l as u128).sum()
    }

    /// Node ids in DFS preorder (the layout order).
    pub fn preorder(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.node_count());
        let mut stack = vec![0usize];
        while let Some(v) = stack.pop() {
            order.push(v);
            // Reverse so the first child is popped first.
            stack.extend(self.children[v].iter().rev());
        }
        order
    }

    /// Leaves in layout order: one unshared sequence each.
    pub fn leaves(&self) -> Vec<usize> {
        self.preorder()
            .into_iter()
            .filter(|&v| self.is_leaf(v))
            .collect()
    }

    /// Nodes from the root down to `node`, inclusive.
    pub fn path_to(&self, node: usize) -> Vec<usize> {
        let mut path = vec![node];
        let mut v = node;
        while let Some(p) = self.parent[v] {
            path.push(p);
            v = p;
        }
        path.reverse();
        path
    }

    /// Where every node lands when the tree is laid out in preorder from token `start`.
    /// Meaningful when `start + total_len()` fits in `usize` (a row builder checks far less than
    /// that first); beyond it token indices saturate at `usize::MAX` rather than wrap or panic.
    pub fn place(&self, start: usize) -> Placement {
        let order = self.preorder();
        let n = self.node_count();
        let mut seg_start = vec![0usize; n];
        let mut depth_offset = vec![0usize; n];
        let mut at = start;
        for &v in &order {
            seg_start[v] = at;
            at = at.saturating_add(self.len[v]);
            if let Some(p) = self.parent[v] {
                depth_offset[v] = depth_offset[p].saturating_add(self.len[p]);
            }
        }
        // Subtree ends: preorder places a subtree contiguously, so its end is the largest segment
        // end inside it; children come after their parent in preorder, so one reverse pass works.
        let mut subtree_end: Vec<usize> = (0..n)
            .map(|v| seg_start[v].saturating_add(self.len[v]))
            .collect();
        for &v in order.iter().rev() {
            if let Some(p) = self.parent[v] {
                subtree_end[p] = subtree_end[p].max(subtree_end[v]);
            }
        }
        Placement {
            seg_start,
            subtree_end,
            depth_offset,
        }
    }
}

/// A tree laid out in a row: per node (by id), where its segment starts, where its subtree ends
/// (both absolute token indices in the row) and the position id of its first token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub seg_start: Vec<usize>,
    pub subtree_end: Vec<usize>,
    pub depth_offset: Vec<usize>,
}

fn check_len(node: usize, len: usize) -> Result<()> {
    if len == 0 {
        return Err(Error::InvalidSegment {
            what: "tree node",
            index: node,
            detail: "the segment has no tokens".into(),
        });
    }
    Ok(())
}
