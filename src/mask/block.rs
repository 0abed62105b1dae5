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
//! Storage is compressed sparse rows of int32, ready to upload:
//! - q-major (forward, dQ): for row `r`, q tile `t`, entries
//!   `q_entries[q_offsets[r * q_tiles + t] .. q_offsets[r * q_tiles + t + 1]]`, ascending k tile;
//! - k-major (dK/dV): the same with the roles swapped, ascending q tile.
//!
//! Each entry is `tile << PA_TILE_INDEX_SHIFT | partial` (see csrc/pa_params.h).
//! Building never forms the dense n x n mask: it costs O(tokens + non-empty tiles).

use crate::error::{Error, Result};
use crate::ffi::params::{PA_TILE_INDEX_SHIFT, PA_TILE_PARTIAL_BIT};
use crate::mask::rule::{visible_pairs_in_row, VisEnd};

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
            return Err(Error::InvalidTileShape { block_q, block_k });
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

/// Encodes one list entry as the kernels read it.
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

/// Decodes a list entry into (tile index, class).
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

/// Slots `0..offsets.len() - 1` ordered by decreasing list length (stable: ties keep slot order).
fn heaviest_first_order(offsets: &[i32]) -> Vec<i32> {
    let mut order: Vec<i32> = (0..offsets.len() as i32 - 1).collect();
    order.sort_by_key(|&s| std::cmp::Reverse(offsets[s as usize + 1] - offsets[s as usize]));
    order
}

/// The block lists of a batch for one tile shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMask {
    tile: TileShape,
    n: usize,
    rows: usize,
    q_tiles: usize,
    k_tiles: usize,
    q_offsets: Vec<i32>,
    q_entries: Vec<i32>,
    k_offsets: Vec<i32>,
    k_entries: Vec<i32>,
    heaviest_first: Vec<i32>,
    k_heaviest_first: Vec<i32>,
    stats: TileStats,
}

impl BlockMask {
    /// Classifies every tile of every row of `vis_end` (already validated by [`VisEnd`]).
    pub fn build(vis_end: &VisEnd, tile: TileShape) -> Result<Self> {
        let n = vis_end.n();
        let rows = vis_end.rows();
        let (bq, bk) = (tile.block_q, tile.block_k);
        let q_tiles = n.div_ceil(bq);
        let k_tiles = n.div_ceil(bk);

        // k-major first: each key j covers the queries j..vis_end[j], i.e. the q tiles
        // j / bq ..= (vis_end[j] - 1) / bq. Keys ascend, so interval starts ascend and a single
        // merge pass gives the union per k tile.
        let mut k_offsets = Vec::with_capacity(rows * k_tiles + 1);
        let mut k_entries: Vec<i32> = Vec::new();
        let mut stats = TileStats::default();
        k_offsets.push(0i32);
        for r in 0..rows {
            let row = vis_end.row(r);
            stats.visible_pairs += visible_pairs_in_row(row);
            for kt in 0..k_tiles {
                let k0 = kt * bk;
                let k1 = ((kt + 1) * bk).min(n);
                // FULL q tiles for this k tile: the k tile lies inside the row, every key is at
                // or before the tile's first query, and every key is seen by its last query.
                let k_inside = (kt + 1) * bk <= n;
                let min_vis = row[k0..k1].iter().copied().min().unwrap_or(0) as usize;
                let full_lo = (k1 - 1).div_ceil(bq); // first q tile with q0 >= k1 - 1
                let full_hi = min_vis.min(n) / bq; // q tiles with q1 <= min_vis
                let is_full = |qt: usize| k_inside && qt >= full_lo && qt < full_hi;

                let mut open: Option<(usize, usize)> = None; // current merged [lo, hi]
                let emit = |lo: usize, hi: usize, out: &mut Vec<i32>| {
                    for qt in lo..=hi {
                        let class = if is_full(qt) {
                            TileClass::Full
                        } else {
                            TileClass::Partial
                        };
                        out.push(encode_entry(qt, class));
                    }
                };
                for (j, &v) in row.iter().enumerate().take(k1).skip(k0) {
                    let v = v as usize;
                    if v <= j {
                        continue; // padding: seen by nobody
                    }
                    let (lo, hi) = (j / bq, (v - 1) / bq);
                    open = match open {
                        Some((olo, ohi)) if lo <= ohi + 1 => Some((olo, ohi.max(hi))),
                        Some((olo, ohi)) => {
                            emit(olo, ohi, &mut k_entries);
                            Some((lo, hi))
                        }
                        None => Some((lo, hi)),
                    };
                }
                if let Some((lo, hi)) = open {
                    emit(lo, hi, &mut k_entries);
                }
                if k_entries.len() > i32::MAX as usize {
                    return Err(Error::IndexOverflow {
                        what: "non-empty tiles",
                        value: k_entries.len() as u128,
                    });
                }
                k_offsets.push(k_entries.len() as i32);
            }
        }

        // q-major: the transpose, by counting. Filling in ascending k tile keeps each q list
        // ascending.
        let mut counts = vec![0i32; rows * q_tiles + 1];
        for r in 0..rows {
            for kt in 0..k_tiles {
                let s = r * k_tiles + kt;
                for &e in &k_entries[k_offsets[s] as usize..k_offsets[s + 1] as usize] {
                    counts[r * q_tiles + decode_entry(e).0 + 1] += 1;
                }
            }
        }
        let mut q_offsets = counts;
        for i in 1..q_offsets.len() {
            q_offsets[i] += q_offsets[i - 1];
        }
        let mut cursor: Vec<i32> = q_offsets[..rows * q_tiles].to_vec();
        let mut q_entries = vec![0i32; k_entries.len()];
        for r in 0..rows {
            for kt in 0..k_tiles {
                let s = r * k_tiles + kt;
                for &e in &k_entries[k_offsets[s] as usize..k_offsets[s + 1] as usize] {
                    let (qt, class) = decode_entry(e);
                    let slot = &mut cursor[r * q_tiles + qt];
                    q_entries[*slot as usize] = encode_entry(kt, class);
                    *slot += 1;
                }
            }
        }

        for &e in &k_entries {
            match decode_entry(e).1 {
                TileClass::Full => stats.full += 1,
                _ => stats.partial += 1,
            }
        }
        stats.empty = (rows * q_tiles * k_tiles) as u64 - stats.full - stats.partial;

        // Launch orders: the tiles with the most partners first, so the longest CTAs start early
        // and the short ones fill the tail. Ties keep (row, tile) order.
        let heaviest_first = heaviest_first_order(&q_offsets);
        let k_heaviest_first = heaviest_first_order(&k_offsets);

        Ok(Self {
            tile,
            n,
            rows,
            q_tiles,
            k_tiles,
            q_offsets,
            q_entries,
            k_offsets,
            k_entries,
            heaviest_first,
            k_heaviest_first,
            stats,
        })
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

    /// q-major offsets: `rows * q_tiles + 1` entries.
    pub fn q_offsets(&self) -> &[i32] {
        &self.q_offsets
    }

    /// q-major entries (k tiles with their flag).
    pub fn q_entries(&self) -> &[i32] {
        &self.q_entries
    }

    /// k-major offsets: `rows * k_tiles + 1` entries.
    pub fn k_offsets(&self) -> &[i32] {
        &self.k_offsets
    }

    /// k-major entries (q tiles with their flag).
    pub fn k_entries(&self) -> &[i32] {
        &self.k_entries
    }

    /// `row * q_tiles + q_tile` slots ordered by decreasing number of k tiles: the launch order
    /// of kernels that walk the q-major lists (forward, dQ).
    pub fn heaviest_first(&self) -> &[i32] {
        &self.heaviest_first
    }

    /// `row * k_tiles + k_tile` slots ordered by decreasing number of q tiles: the launch order of
    /// kernels that walk the k-major lists (dK/dV).
    pub fn k_heaviest_first(&self) -> &[i32] {
        &self.k_heaviest_first
    }

    /// The non-empty k tiles of row `r`, q tile `qt`, ascending, with their class.
    pub fn q_list(&self, r: usize, qt: usize) -> impl Iterator<Item = (usize, TileClass)> + '_ {
        let s = r * self.q_tiles + qt;
        self.q_entries[self.q_offsets[s] as usize..self.q_offsets[s + 1] as usize]
            .iter()
            .map(|&e| decode_entry(e))
    }

    /// The non-empty q tiles of row `r`, k tile `kt`, ascending, with their class.
    pub fn k_list(&self, r: usize, kt: usize) -> impl Iterator<Item = (usize, TileClass)> + '_ {
        let s = r * self.k_tiles + kt;
        self.k_entries[self.k_offsets[s] as usize..self.k_offsets[s + 1] as usize]
            .iter()
            .map(|&e| decode_entry(e))
    }

    /// Class of one tile (a binary search in its q list).
    pub fn class(&self, r: usize, qt: usize, kt: usize) -> TileClass {
        let s = r * self.q_tiles + qt;
        let list = &self.q_entries[self.q_offsets[s] as usize..self.q_offsets[s + 1] as usize];
        match list.binary_search_by_key(&kt, |&e| decode_entry(e).0) {
            Ok(i) => decode_entry(list[i]).1,
            Err(_) => TileClass::Empty,
        }
    }

    pub fn stats(&self) -> TileStats {
        self.stats
    }

    /// Forward FLOPs of the visible pairs (FlashAttention convention: two matmuls, 4 per pair
    /// per head per dim).
    pub fn forward_flops(&self, q_heads: usize, head_dim: usize) -> f64 {
        4.0 * self.stats.visible_pairs as f64 * q_heads as f64 * head_dim as f64
    }
}
