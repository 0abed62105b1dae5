//! What a trainer hands in: token ids of a prompt with k completions, or of a tree (a shared
//! history that branches). Checked here, naming the sample, before anything is laid out.

use crate::error::{Error, Result};

/// One training sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sample {
    /// A prompt and k >= 1 completions (DPO: chosen and rejected; GRPO: a group). Completion
    /// tokens are scored (their log-probs are gathered), prompt tokens are not.
    Completions {
        prompt: Vec<u32>,
        completions: Vec<Vec<u32>>,
    },
    /// A tree of segments; every root-to-leaf path is one completion.
    Tree(TokenTree),
}

impl Sample {
    pub fn completions(prompt: Vec<u32>, completions: Vec<Vec<u32>>) -> Self {
        Sample::Completions {
            prompt,
            completions,
        }
    }
}

/// A branching token sequence: the root holds the shared history (never scored), each child
/// continues its parent. Completions are the root-to-leaf paths, numbered in DFS preorder of
/// their leaves (children in insertion order); a completion's log-prob sums its scored tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTree {
    pub(crate) tokens: Vec<Vec<u32>>,
    pub(crate) parent: Vec<Option<usize>>,
    pub(crate) scored: Vec<bool>,
}

impl TokenTree {
    /// A tree whose root (node 0) is the shared history `root`.
    pub fn new(root: Vec<u32>) -> Self {
        Self {
            tokens: vec![root],
            parent: vec![None],
            scored: vec![false],
        }
    }

    /// Adds a segment under `parent`; `scored` says whether its tokens count in the log-probs of
    /// the completions through it (for example: assistant turns yes, user turns no). Returns the
    /// node id.
    pub fn add_child(&mut self, parent: usize, tokens: Vec<u32>, scored: bool) -> Result<usize> {
        let id = self.tokens.len();
        if parent >= id {
            return Err(Error::InvalidSegment {
                what: "tree node",
                index: id,
                detail: format!("parent {parent} does not exist (the tree has {id} nodes)"),
            });
        }
        self.tokens.push(tokens);
        self.parent.push(Some(parent));
        self.scored.push(scored);
        Ok(id)
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.tokens.len()
    }

    /// The tokens of node `node`.
    pub fn tokens(&self, node: usize) -> &[u32] {
        &self.tokens[node]
    }

    /// The parent of `node` (`None` for the root).
    pub fn parent(&self, node: usize) -> Option<usize> {
        self.parent[node]
    }

    /// Whether the tokens of `node` are scored.
    pub fn is_scored(&self, node: usize) -> bool {
        self.scored[node]
    }
}

/// Whether a sample was given as prompt + completions (laid out with prompt/completion roles) or
/// as a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SampleKind {
    Completions,
    Tree,
}

/// A sample checked and, where asked, truncated: always a tree underneath.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) sample: usize,
    pub(crate) kind: SampleKind,
    pub(crate) tree: TokenTree,
}

/// Checks sample `sample`: no empty prompt, completion or segment, k >= 1, token ids below
/// `vocab`.
pub(crate) fn check(sample: usize, s: &Sample, vocab: Option<u32>) -> Result<Checked> {
    let (kind, tree) = match s {
        Sample::Completions {
            prompt,
            completions,
        } => {
            if prompt.is_empty() {
                return Err(Error::EmptyPrompt { sample });
            }
            if completions.is_empty() {
                return Err(Error::NoCompletions { sample });
            }
            let mut tree = TokenTree::new(prompt.clone());
            for (c, comp) in completions.iter().enumerate() {
                if comp.is_empty() {
                    return Err(Error::EmptyCompletion {
                        sample,
                        completion: c,
                    });
                }
                tree.add_child(0, comp.clone(), true)?;
            }
            (SampleKind::Completions, tree)
        }
        Sample::Tree(tree) => {
            if tree.tokens[0].is_empty() {
                return Err(Error::EmptyPrompt { sample });
            }
            if tree.node_count() == 1 {
                return Err(Error::NoCompletions { sample });
            }
            if let Some(v) = tree.tokens.iter().position(Vec::is_empty) {
                return Err(Error::InvalidSegment {
                    what: "sample",
                    index: sample,
                    detail: format!("tree node {v} has no tokens"),
                });
            }
            (SampleKind::Tree, tree.clone())
        }
    };
    if let Some(vocab) = vocab {
        check_vocab(sample, &tree, vocab)?;
    }
    Ok(Checked { sample, kind, tree })
}

/// The first token id `>= vocab`, reported with its position id (its index in its unshared
/// prompt+completion sequence).
fn check_vocab(sample: usize, tree: &TokenTree, vocab: u32) -> Result<()> {
    let mut depth = vec![0usize; tree.node_count()];
    for v in 0..tree.node_count() {
        // Parents are added before their children, so their depth is known.
        if let Some(p) = tree.parent[v] {
            depth[v] = depth[p] + tree.tokens[p].len();
        }
        if let Some(t) = tree.tokens[v].iter().position(|&x| x >= vocab) {
            return Err(Error::TokenOutOfVocab {
                sample,
                position: depth[v] + t,
                token: tree.tokens[v][t],
                vocab,
            });
        }
    }
    Ok(())
}

impl TokenTree {
    /// The segment lengths as a layout tree (same node ids: parents always precede children).
    pub(crate) fn layout_tree(&self) -> Result<crate::layout::Tree> {
        let mut tree = crate::layout::Tree::new(self.tokens[0].len())?;
        for v in 1..self.node_count() {
            tree.add_child(self.parent[v].unwrap_or(0), self.tokens[v].len())?;
        }
        Ok(tree)
    }
}
