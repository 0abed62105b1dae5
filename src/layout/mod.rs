//! Row layouts: builders that turn documents, prompts with completions, and trees into the
//! `vis_end` and position ids of one row, plus the unshared equivalent of each item.
//!
//! | item | `vis_end[j]` | position ids |
//! |---|---|---|
//! | causal document of length L at s | s + L | 0..L |
//! | prompt at s, completions after it | prompt: end of the item; completion: end of itself | prompt 0..P; every completion P.. |
//! | tree in DFS preorder | end of the subtree of j's segment | continue from the parent segment's end |
//! | padding | j (seen by nobody) | 0 |
//!
//! So a prompt token is seen by the prompt and all its completions, a completion token only by
//! its own later tokens, and packed items never see each other. Every finished row is checked by
//! [`crate::mask::rule::validate_row`].
//!
//! ```
//! use prefix_attn::layout::{RowBuilder, Tree};
//! let mut row = RowBuilder::new();
//! row.document(3)?;                       // tokens 0..3
//! row.prefix_completions(2, &[2, 1])?;    // prompt 3..5, completions 5..7 and 7..8
//! let mut tree = Tree::new(1)?;           // root 8..9
//! let a = tree.add_child(0, 1)?;          // 9..10
//! tree.add_child(a, 1)?;                  // 10..11
//! tree.add_child(0, 1)?;                  // 11..12
//! row.tree(tree)?;
//! let row = row.finish(14)?;              // padding 12..14
//! assert_eq!(row.vis_end(), &[3, 3, 3, 8, 8, 7, 7, 8, 12, 11, 11, 12, 12, 13]);
//! assert_eq!(row.positions(), &[0, 1, 2, 0, 1, 2, 3, 2, 0, 1, 2, 1, 0, 0]);
//! # Ok::<(), prefix_attn::Error>(())
//! ```

pub mod limits;
pub mod paired;
pub mod row;
pub mod tree;

pub use limits::{MAX_ROW_TOKENS, ROW_HOST_BYTES_PER_TOKEN};
pub use paired::PairedSeq;
pub use row::{Item, ItemKind, Role, Row, RowBuilder, TokenInfo};
pub use tree::{Placement, Tree};
