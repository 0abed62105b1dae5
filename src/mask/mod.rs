//! Masks: the one rule (`rule`), and its classification into tiles (`block`).

pub mod block;
pub mod rule;

pub use block::{BlockMask, TileClass, TileShape, TileStats};
pub use rule::{visible, VisEnd};
