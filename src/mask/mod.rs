//! Masks: the one rule (`rule`), and its classification into tiles (`block`), stored as runs
//! (`runs`) and built in linear time (`build`).

pub mod block;
mod build;
pub mod rule;
mod runs;

pub use block::{BlockMask, ListArrays, TileClass, TileRun, TileShape, TileStats};
pub use rule::{visible, VisEnd};
