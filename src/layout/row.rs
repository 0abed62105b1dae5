//! Building one row: items (documents, prompts with completions, trees, padding) appended left
//! to right, then padded to the row length. Every item is a [`Tree`] underneath; its tokens get
//! `vis_end` = the end of their segment's subtree and position ids that continue from the parent
//! segment, exactly as if each root-to-leaf path were its own sequence.

use crate::error::{Error, Result};
use crate::layout::limits::MAX_ROW_TOKENS;
use crate::layout::paired::PairedSeq;
use crate::layout::tree::{Placement, Tree};
use crate::mask::rule::validate_row;

/// What an item of a row is; decides the [`Role`] of its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// A causal document (a tree of one node).
    Document,
    /// A prompt (node 0) and k completions (node `c + 1` is completion `c`).
    PrefixCompletions,
    /// A general tree of segments.
    Tree,
}

/// The part of an item a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Padding: visible to nobody (`vis_end[j] = j`), position 0, belongs to no item.
    Padding,
    /// A token of a causal document.
    Document,
    /// A prompt token of a prefix + k item.
    Prompt,
    /// A token of completion `c` of a prefix + k item.
    Completion(usize),
    /// A token of tree node `node`.
    Node(usize),
}

impl Role {
    /// The tree node (of the item's [`Tree`]) this role stands for; `None` for padding.
    pub fn node(&self) -> Option<usize> {
        match *self {
            Role::Padding => None,
            Role::Document | Role::Prompt => Some(0),
            Role::Completion(c) => Some(c + 1),
            Role::Node(v) => Some(v),
        }
    }
}

/// Per-token bookkeeping: which item of the row, and which part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenInfo {
    /// Index of the item in the row (in append order); `None` for padding.
    pub item: Option<usize>,
    pub role: Role,
}

/// One item placed in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    kind: ItemKind,
    index: usize,
    tree: Tree,
    placement: Placement,
}

impl Item {
    pub fn kind(&self) -> ItemKind {
        self.kind
    }

    /// The item's index in its row.
    pub fn index(&self) -> usize {
        self.index
    }

    /// First token of the item in the row.
    pub fn start(&self) -> usize {
        self.placement.seg_start[0]
    }

    /// Tokens of the item in the row.
    pub fn len(&self) -> usize {
        self.tree.total_len()
    }

    /// Always false: items have at least one token.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The item's segments.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Where each segment of the item sits in the row.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The role of the tokens of `node`.
    pub fn role_of(&self, node: usize) -> Role {
        match self.kind {
            ItemKind::Document => Role::Document,
            ItemKind::PrefixCompletions if node == 0 => Role::Prompt,
            ItemKind::PrefixCompletions => Role::Completion(node - 1),
            ItemKind::Tree => Role::Node(node),
        }
    }

    /// The unshared ("paired") equivalent: one causal sequence per root-to-leaf path, leaves in
    /// layout order (for prefix + k: completion 0, 1, ...), each with the row index of every one
    /// of its tokens.
    pub fn paired(&self) -> Vec<PairedSeq> {
        self.tree
            .leaves()
            .into_iter()
            .map(|leaf| {
                let shared = self
                    .tree
                    .path_to(leaf)
                    .into_iter()
                    .flat_map(|v| {
                        let s = self.placement.seg_start[v];
                        s..s + self.tree.segment_len(v)
                    })
                    .collect();
                PairedSeq {
                    item: self.index,
                    leaf,
                    shared,
                }
            })
            .collect()
    }
}

/// Appends items to a row; [`RowBuilder::finish`] pads it and checks the result against the rule.
/// A row keeps [`crate::layout::ROW_HOST_BYTES_PER_TOKEN`] bytes of host metadata per token and
/// may have at most [`MAX_ROW_TOKENS`] tokens (more is `RowTooLong`, refused before allocating).
#[derive(Debug, Clone, Default)]
pub struct RowBuilder {
    vis_end: Vec<i32>,
    positions: Vec<i32>,
    tokens: Vec<TokenInfo>,
    items: Vec<Item>,
}

impl RowBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Tokens so far.
    pub fn len(&self) -> usize {
        self.vis_end.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vis_end.is_empty()
    }

    /// Items so far.
    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    /// A causal document of `len` tokens (packing: append several). Returns the item index.
    pub fn document(&mut self, len: usize) -> Result<usize> {
        if len == 0 {
            return Err(Error::InvalidSegment {
                what: "document",
                index: self.items.len(),
                detail: "the document has no tokens".into(),
            });
        }
        self.push(ItemKind::Document, Tree::new(len)?)
    }

    /// A prompt of `prompt_len` tokens followed by its completions, laid out
    /// `[prompt | c0 | c1 | ...]`. An empty prompt or completion, or no completion, is
    /// `InvalidSegment` naming the row item (its index in this row).
    pub fn prefix_completions(
        &mut self,
        prompt_len: usize,
        completion_lens: &[usize],
    ) -> Result<usize> {
        let index = self.items.len();
        let bad = |detail: String| {
            Err(Error::InvalidSegment {
                what: "row item",
                index,
                detail,
            })
        };
        if prompt_len == 0 {
            return bad("prefix + completions: the prompt has no tokens".into());
        }
        if completion_lens.is_empty() {
            return bad("prefix + completions: no completions (k = 0)".into());
        }
        if let Some(c) = completion_lens.iter().position(|&l| l == 0) {
            return bad(format!(
                "prefix + completions: completion {c} has no tokens"
            ));
        }
        // The checks above leave nothing for the tree to refuse; its `sample` label is unused.
        let tree = Tree::prefix_completions(index, prompt_len, completion_lens)?;
        self.push(ItemKind::PrefixCompletions, tree)
    }

    /// A tree of segments in DFS preorder.
    pub fn tree(&mut self, tree: Tree) -> Result<usize> {
        self.push(ItemKind::Tree, tree)
    }

    /// `len` padding tokens (none for 0): `vis_end[j] = j`, position 0, seen by nobody.
    pub fn padding(&mut self, len: usize) -> Result<()> {
        let end = self.checked_end(len)?;
        for j in self.len()..end {
            self.vis_end.push(j as i32);
            self.positions.push(0);
            self.tokens.push(TokenInfo {
                item: None,
                role: Role::Padding,
            });
        }
        Ok(())
    }

    /// Pads to `n` tokens and checks the row against the rule.
    pub fn finish(mut self, n: usize) -> Result<Row> {
        if self.len() > n {
            return Err(Error::LengthMismatch {
                what: "row content (at most the row length n)",
                expected: n,
                got: self.len(),
            });
        }
        self.padding(n - self.len())?;
        validate_row(0, &self.vis_end)?;
        Ok(Row {
            vis_end: self.vis_end,
            positions: self.positions,
            tokens: self.tokens,
            items: self.items,
        })
    }

    /// The row length after appending `len` tokens, if it stays within [`MAX_ROW_TOKENS`]
    /// (checked before anything is allocated).
    fn checked_end(&self, len: usize) -> Result<usize> {
        self.checked_end_exact(len as u128)
    }

    /// [`RowBuilder::checked_end`] of a length that may exceed `usize` (a tree's exact total).
    fn checked_end_exact(&self, len: u128) -> Result<usize> {
        let end = self.len() as u128 + len;
        if end <= MAX_ROW_TOKENS as u128 {
            Ok(end as usize)
        } else {
            Err(Error::RowTooLong {
                what: "RowBuilder",
                tokens: end,
                max: MAX_ROW_TOKENS,
            })
        }
    }

    fn push(&mut self, kind: ItemKind, tree: Tree) -> Result<usize> {
        // The exact sum: segment lengths near usize::MAX must be refused, not wrap or panic.
        self.checked_end_exact(tree.total_len_exact())?;
        let index = self.items.len();
        let placement = tree.place(self.len());
        let item = Item {
            kind,
            index,
            tree,
            placement,
        };
        for v in item.tree.preorder() {
            let vis = item.placement.subtree_end[v] as i32;
            let pos0 = item.placement.depth_offset[v];
            let role = item.role_of(v);
            for t in 0..item.tree.segment_len(v) {
                self.vis_end.push(vis);
                self.positions.push((pos0 + t) as i32);
                self.tokens.push(TokenInfo {
                    item: Some(index),
                    role,
                });
            }
        }
        self.items.push(item);
        Ok(index)
    }
}

/// A finished row: `vis_end` (valid under the rule), position ids, per-token info and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    vis_end: Vec<i32>,
    positions: Vec<i32>,
    tokens: Vec<TokenInfo>,
    items: Vec<Item>,
}

impl Row {
    /// Tokens in the row (padding included).
    pub fn len(&self) -> usize {
        self.vis_end.len()
    }

    /// Always false: a finished row has at least one token.
    pub fn is_empty(&self) -> bool {
        self.vis_end.is_empty()
    }

    pub fn vis_end(&self) -> &[i32] {
        &self.vis_end
    }

    /// Position ids: index of each token in its unshared sequence; 0 for padding.
    pub fn positions(&self) -> &[i32] {
        &self.positions
    }

    pub fn tokens(&self) -> &[TokenInfo] {
        &self.tokens
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Tokens that belong to an item (not padding).
    pub fn real_tokens(&self) -> usize {
        self.items.iter().map(Item::len).sum()
    }

    /// The unshared equivalent of every item, item after item.
    pub fn paired(&self) -> Vec<PairedSeq> {
        self.items.iter().flat_map(Item::paired).collect()
    }

    /// Gives back the `vis_end` and position ids.
    pub fn into_parts(self) -> (Vec<i32>, Vec<i32>) {
        (self.vis_end, self.positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segment lengths whose sum overflows `usize` are a row too long, before anything is
    /// allocated (found by the `row_builder` fuzz target, fuzz/regressions/row_builder/).
    #[test]
    fn lengths_past_usize_are_row_too_long() {
        let too_long = |r: Result<usize>| matches!(r, Err(Error::RowTooLong { .. }));
        assert!(too_long(
            RowBuilder::new().prefix_completions(usize::MAX, &[1])
        ));
        assert!(too_long(
            RowBuilder::new().prefix_completions(1 << 63, &[1 << 63])
        ));
        let mut t = Tree::new(usize::MAX).unwrap();
        t.add_child(0, 1).unwrap();
        assert_eq!(t.total_len(), usize::MAX);
        let mut b = RowBuilder::new();
        b.document(3).unwrap();
        let err = b.tree(t).unwrap_err();
        match err {
            Error::RowTooLong { tokens, .. } => assert_eq!(tokens, 3 + usize::MAX as u128 + 1),
            e => panic!("{e:?}"),
        }
        // The builder is unchanged: one document of 3 tokens.
        assert_eq!(b.len(), 3);
    }
}
