//! Block masks: the mask rule classified per (q tile, k tile), which is what lets kernels skip
//! work. For a tile shape (block_q, block_k) every tile of a row is
//!
//! - EMPTY: no pair visible; never listed, never touched;
//! - FULL: every pair visible; the kernel applies no per-element mask;
//! - PARTIAL: the rest; the kernel applies `j <= i && i < vis_end[j]` per element.
//!
//! A row whose length is not a multiple of the tile is treated as padded up to one with padding
//! tokens (`vis_end[j] = j`, visible to nobody). So the ragged last q or k tile is never FULL, and
//! the per-element path is also what keeps kernels from reading past the row. The classification
//! is exact over that padded rectangle.
//!
//! Storage is runs (`src/mask/runs.rs`): per (row, q tile) the non-empty k tiles, ascending, as
//! runs of consecutive tiles of one class (q-major: forward, dQ), and per (row, k tile) its q
//! tiles likewise (k-major: dK/dV). A causal, packed-document or prefix + completions row has a
//! handful of runs per tile, so the lists grow with tokens, not with tiles squared; an arbitrary
//! `vis_end` stays exact with runs as short as one tile. Building never enumerates tiles either
//! (`src/mask/build.rs`): O(tokens / 16) per tile shape after one pass over the tokens, plus the
//! runs it writes.

use crate::error::Result;
use crate::ffi::params::{PA_TILE_INDEX_SHIFT, PA_TILE_PARTIAL_BIT};
use crate::mask::build::{build_masks, Summary};
use crate::mask::rule::VisEnd;
use crate::mask::runs::RunLists;

pub use crate::mask::runs::{ListArrays, TileRun};

/// Tile sides in tokens: queries per q tile and keys per k tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileShape {
    block_q: usize,
    block_k: usize,
}

impl TileShape {
    /// Both sides positive multiples of 16 (the mma fragment) and at most 256.
    pub fn new(block_q: usize, block_k: usize) -> Result<Self> {
        let ok = |b: usize| b > 0 && b % 16 == 0 && b <= 256;
        if !ok(block_q) || !ok(block_k) {
            return Err(crate::error::Error::InvalidTileShape { block_q, block_k });
        }
        Ok(Self { block_q, block_k })
    }

    pub fn block_q(&self) -> usize {
        self.block_q
    }

    pub fn block_k(&self) -> usize {
        self.block_k
    }
}

/// The class of one (q tile, k tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileClass {
    Empty,
    Full,
    Partial,
}

/// Counts the benchmarks and FLOP figures need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TileStats {
    /// Visible (query, key) pairs, exact.
    pub visible_pairs: u64,
    /// Tiles by class, over all rows.
    pub full: u64,
    pub partial: u64,
    pub empty: u64,
}

impl TileStats {
    /// All (q tile, k tile) pairs of all rows.
    pub fn total(&self) -> u64 {
        self.full + self.partial + self.empty
    }

    /// Tiles a kernel touches.
    pub fn non_empty(&self) -> u64 {
        self.full + self.partial
    }
}

/// Encodes one tile of a list as the kernels see it while walking a run (`tile <<
/// PA_TILE_INDEX_SHIFT | partial`, csrc/pa_params.h).
#[inline]
pub fn encode_entry(tile: usize, class: TileClass) -> i32 {
    debug_assert!(class != TileClass::Empty);
    ((tile as i32) << PA_TILE_INDEX_SHIFT)
        | if class == TileClass::Partial {
            PA_TILE_PARTIAL_BIT as i32
        } else {
            0
        }
}

/// Decodes an entry into (tile index, class).
#[inline]
pub fn decode_entry(entry: i32) -> (usize, TileClass) {
    let tile = (entry >> PA_TILE_INDEX_SHIFT) as usize;
    let class = if entry & PA_TILE_PARTIAL_BIT as i32 != 0 {
        TileClass::Partial
    } else {
        TileClass::Full
    };
    (tile, class)
}

/// The block lists of a batch for one tile shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMask {
    pub(crate) tile: TileShape,
    pub(crate) n: usize,
    pub(crate) rows: usize,
    pub(crate) q_tiles: usize,
    pub(crate) k_tiles: usize,
    pub(crate) q: RunLists,
    pub(crate) k: RunLists,
    pub(crate) stats: TileStats,
}

impl BlockMask {
    /// Classifies every tile of every row of `vis_end` (already validated by [`VisEnd`]).
    pub fn build(vis_end: &VisEnd, tile: TileShape) -> Result<Self> {
        Ok(Self::build_all(vis_end, &[tile])?
            .pop()
            .expect("one mask per tile"))
    }

    /// [`BlockMask::build`] at each of `tiles`, in order, sharing the one pass over the tokens
    /// they all start from.
    pub fn build_all(vis_end: &VisEnd, tiles: &[TileShape]) -> Result<Vec<Self>> {
        build_masks(&Summary::of(vis_end), tiles)
    }

    pub fn tile(&self) -> TileShape {
        self.tile
    }

    /// Tokens per row.
    pub fn n(&self) -> usize {
        self.n
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// q tiles per row.
    pub fn q_tiles(&self) -> usize {
        self.q_tiles
    }

    /// k tiles per row.
    pub fn k_tiles(&self) -> usize {
        self.k_tiles
    }

    /// The q-major arrays (forward, dQ) as uploaded: `rows * q_tiles` slots.
    pub fn q_major(&self) -> ListArrays<'_> {
        self.q.arrays()
    }

    /// The k-major arrays (dK/dV) as uploaded: `rows * k_tiles` slots.
    pub fn k_major(&self) -> ListArrays<'_> {
        self.k.arrays()
    }

    /// `row * q_tiles + q_tile` slots ordered by decreasing number of k tiles: the launch order
    /// of kernels that walk the q-major lists (forward, dQ).
    pub fn heaviest_first(&self) -> &[i32] {
        &self.q.order
    }

    /// `row * k_tiles + k_tile` slots ordered by decreasing number of q tiles: the launch order of
    /// kernels that walk the k-major lists (dK/dV).
    pub fn k_heaviest_first(&self) -> &[i32] {
        &self.k.order
    }

    /// The runs of row `r`, q tile `qt`: its non-empty k tiles, ascending, grouped into runs of
    /// consecutive tiles of one class.
    pub fn q_runs(&self, r: usize, qt: usize) -> impl Iterator<Item = TileRun> + '_ {
        self.q.runs_of(r * self.q_tiles + qt)
    }

    /// The runs of row `r`, k tile `kt`: its non-empty q tiles, ascending.
    pub fn k_runs(&self, r: usize, kt: usize) -> impl Iterator<Item = TileRun> + '_ {
        self.k.runs_of(r * self.k_tiles + kt)
    }

    /// The non-empty k tiles of row `r`, q tile `qt`, ascending, with their class.
    pub fn q_list(&self, r: usize, qt: usize) -> impl Iterator<Item = (usize, TileClass)> + '_ {
        self.q_runs(r, qt).flat_map(TileRun::tiles)
    }

    /// The non-empty q tiles of row `r`, k tile `kt`, ascending, with their class.
    pub fn k_list(&self, r: usize, kt: usize) -> impl Iterator<Item = (usize, TileClass)> + '_ {
        self.k_runs(r, kt).flat_map(TileRun::tiles)
    }

    /// Class of one tile (a binary search in its q list's runs).
    pub fn class(&self, r: usize, qt: usize, kt: usize) -> TileClass {
        self.q.class_in(r * self.q_tiles + qt, kt)
    }

    pub fn stats(&self) -> TileStats {
        self.stats
    }

    /// Bytes of both directions' arrays (offsets, runs, launch order): what an upload copies,
    /// beside `vis_end`. An empty array is uploaded as one element (a valid address), counted.
    pub fn list_bytes(&self) -> usize {
        self.q.bytes() + self.k.bytes()
    }

    /// Forward FLOPs of the visible pairs (FlashAttention convention: two matmuls, 4 per pair
    /// per head per dim).
    pub fn forward_flops(&self, q_heads: usize, head_dim: usize) -> f64 {
        4.0 * self.stats.visible_pairs as f64 * q_heads as f64 * head_dim as f64
    }
}
