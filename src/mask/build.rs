//! Building the block lists in linear space and time: no tile is enumerated one by one, and no
//! n x n or tiles x tiles array is formed.
//!
//! One pass over the tokens ([`Summary`]) keeps, per 16-token chunk of a row (every tile side is
//! a multiple of 16, so every tile boundary is a chunk boundary), the largest and smallest
//! `vis_end` and whether any key of the chunk is seen by anyone (`vis_end[j] > j`), and counts the
//! visible pairs. Then, per tile shape and row:
//!
//! **k-major.** For a k tile K = [k0, k1) (k1 clipped to n) and a q tile Q = [q0, q1) with
//! q0 >= k1 - 1 (every key of K at or before every query of Q), (Q, K) is non-empty iff
//! `max vis_end over K > q0`, and FULL iff K lies inside the row and `min vis_end over K >= q1`.
//! So the q tiles from `a = ceil((k1 - 1) / block_q)` on split into one FULL run `[a, b)` (b =
//! max(a, floor(min / block_q)) when K is inside the row, else a), one PARTIAL run `[b, c)` (c =
//! max(b, ceil(max / block_q))) and EMPTY tiles after c. The q tiles overlapping K's diagonal,
//! `[floor(k0 / block_q), a)` (at most block_k / block_q + 2 of them), are never FULL (query q0
//! does not see key k1 - 1 > q0); each is PARTIAL iff some key j of K with j < q1 has
//! `vis_end[j] > max(j, q0)`: a range maximum over the keys before q0 (`> q0`) or a seen key from
//! q0 on, both over whole chunks. K's list: those diagonal tiles, then the two runs.
//!
//! **q-major**, by sweeping the q tiles in order. A k tile enters the sweep at its q tile `a` and
//! from then on is FULL until `b`, PARTIAL until `c`, then EMPTY for good; `a` does not decrease
//! with the k tile, so at q tile `qt` the entered k tiles are a prefix `[0, kb)` of the row's k
//! tiles, whose classes change only at the (at most two) events of each k tile. The sweep keeps
//! the classes of the prefix and the set of positions where the class changes (a B-tree), which
//! together are the prefix's runs; the q tile's list is those runs (EMPTY ones left out) followed
//! by the diagonal k tiles `[kb, ceil(q1 / block_k))`, each PARTIAL or EMPTY as found above.
//!
//! Cost per tile shape and row: O(tokens / 16 * (block_k / block_q + 2)) for the maxima and the
//! diagonal tiles, O((k tiles + events) log k tiles) for the sweep, plus the runs written: a
//! causal row has two runs per tile in each direction, packed documents and prefix + completions
//! rows a few. The stats come from the runs (tile counts) and the summary (visible pairs).

use std::collections::BTreeSet;

use crate::error::Result;
use crate::mask::block::{BlockMask, TileShape, TileStats};
use crate::mask::rule::VisEnd;
use crate::mask::runs::RunListBuilder;

/// Tokens per chunk: every tile side is a multiple of it.
const CHUNK: usize = 16;

/// What the lists of every tile shape are built from: per 16-token chunk of every row, the
/// largest and smallest `vis_end` and whether any key is seen, and the visible pairs.
pub(crate) struct Summary {
    n: usize,
    rows: usize,
    /// Chunks per row, ceil(n / 16); the last one covers the row's last tokens only.
    chunks: usize,
    max: Vec<i32>,
    min: Vec<i32>,
    seen: Vec<bool>,
    visible_pairs: u64,
}

impl Summary {
    /// One pass over every token of `vis_end`.
    pub(crate) fn of(vis_end: &VisEnd) -> Self {
        let (n, rows) = (vis_end.n(), vis_end.rows());
        let chunks = n.div_ceil(CHUNK);
        let mut s = Self {
            n,
            rows,
            chunks,
            max: Vec::with_capacity(rows * chunks),
            min: Vec::with_capacity(rows * chunks),
            seen: Vec::with_capacity(rows * chunks),
            visible_pairs: 0,
        };
        for r in 0..rows {
            let row = vis_end.row(r);
            let whole = row.chunks_exact(CHUNK);
            let tail = whole.remainder();
            for (c, chunk) in whole.enumerate() {
                let chunk: &[i32; CHUNK] = chunk.try_into().expect("a whole chunk");
                let (mx, mn, sum) = whole_chunk_stats(chunk, (c * CHUNK) as i32);
                s.push(c, CHUNK, mx, mn, sum);
            }
            if !tail.is_empty() {
                let (mx, mn, sum) = chunk_stats(tail);
                s.push(n / CHUNK, tail.len(), mx, mn, sum);
            }
        }
        s
    }

    /// Chunk `c` of a row (`len` tokens): each key j is seen by vis_end[j] - j >= 0 queries (a
    /// valid row), so its pairs are the sum of its vis_end less the sum of its positions.
    #[inline(always)]
    fn push(&mut self, c: usize, len: usize, mx: i32, mn: i32, sum: i64) {
        let (j0, len) = ((c * CHUNK) as i64, len as i64);
        let pairs = sum - (len * j0 + len * (len - 1) / 2);
        self.max.push(mx);
        self.min.push(mn);
        self.seen.push(pairs > 0);
        self.visible_pairs += pairs as u64;
    }

    fn row(&self, r: usize) -> RowChunks<'_> {
        let at = r * self.chunks..(r + 1) * self.chunks;
        RowChunks {
            max: &self.max[at.clone()],
            min: &self.min[at.clone()],
            seen: &self.seen[at],
        }
    }
}

/// Largest and smallest value and the sum of a whole chunk starting at token j0. The baseline
/// x86-64 target has no vector min or max of int32, but vector XOR and OR: a chunk whose keys
/// share one `vis_end` (causal rows, documents, prompts and completions: almost every chunk of a
/// real row) or are all padding (`vis_end[j] = j`) is recognised by OR-ing XORs and costs no
/// scalar pass.
#[inline(always)]
fn whole_chunk_stats(chunk: &[i32; CHUNK], j0: i32) -> (i32, i32, i64) {
    let first = chunk[0];
    let mut same = 0i32;
    let mut padding = 0i32;
    for (t, &v) in chunk.iter().enumerate() {
        same |= v ^ first;
        padding |= v ^ (j0 + t as i32);
    }
    if same == 0 {
        (first, first, CHUNK as i64 * first as i64)
    } else if padding == 0 {
        let last = j0 + CHUNK as i32 - 1;
        (last, j0, (j0 as i64 + last as i64) * CHUNK as i64 / 2)
    } else {
        chunk_stats(chunk)
    }
}

/// Largest and smallest value and the sum of a chunk, one value at a time.
fn chunk_stats(chunk: &[i32]) -> (i32, i32, i64) {
    let (mut mx, mut mn, mut sum) = (i32::MIN, i32::MAX, 0i64);
    for &v in chunk {
        mx = mx.max(v);
        mn = mn.min(v);
        sum += v as i64;
    }
    (mx, mn, sum)
}

/// One row's chunks; ranges are in tokens, multiples of 16 or n.
struct RowChunks<'a> {
    max: &'a [i32],
    min: &'a [i32],
    seen: &'a [bool],
}

impl RowChunks<'_> {
    fn range(t0: usize, t1: usize) -> std::ops::Range<usize> {
        t0 / CHUNK..t1.div_ceil(CHUNK)
    }
    fn max(&self, t0: usize, t1: usize) -> i32 {
        self.max[Self::range(t0, t1)]
            .iter()
            .copied()
            .max()
            .unwrap_or(i32::MIN)
    }
    fn min(&self, t0: usize, t1: usize) -> i32 {
        self.min[Self::range(t0, t1)]
            .iter()
            .copied()
            .min()
            .unwrap_or(i32::MAX)
    }
    fn any_seen(&self, t0: usize, t1: usize) -> bool {
        self.seen[Self::range(t0, t1)].iter().any(|&s| s)
    }
}

/// Division by a tile side without a divide instruction (tens of cycles each, several per tile
/// otherwise): `floor(x / d) = (x * m) >> s` with `m = ceil(2^s / d)`, `s = 32 + ceil(log2 d)`,
/// exact for every x below 2^32 (Granlund and Montgomery, 1994), which every token index and
/// tile boundary is (n < 2^31, tile sides at most 256).
#[derive(Clone, Copy)]
struct Divider {
    m: u64,
    s: u32,
}

impl Divider {
    fn new(d: usize) -> Self {
        debug_assert!(d > 0 && d <= 1 << 16);
        let l = usize::BITS - (d - 1).leading_zeros(); // ceil(log2 d)
        let s = 32 + l;
        Self {
            m: (1u128 << s).div_ceil(d as u128) as u64,
            s,
        }
    }

    #[inline(always)]
    fn div(self, x: usize) -> usize {
        debug_assert!(x < 1 << 32);
        // m < 2^33 and x < 2^32: one widening multiply.
        ((x as u64 as u128 * self.m as u128) >> self.s) as usize
    }

    /// ceil(x / d) for x + d below 2^32.
    #[inline(always)]
    fn div_ceil(self, x: usize, d: usize) -> usize {
        self.div(x + d - 1)
    }
}

/// Class codes of the sweep.
const EMPTY: u8 = 0;
const FULL: u8 = 1;
const PARTIAL: u8 = 2;

/// Per k tile of the row being built: its q tiles from `a` on are FULL until `b`, PARTIAL until
/// `c`; bit d of `diag` says q tile `floor(k0 / block_q) + d` (below `a`) is PARTIAL.
#[derive(Clone, Copy, Default)]
struct KTile {
    a: u32,
    b: u32,
    c: u32,
    diag: u32,
}

impl KTile {
    fn class_at(&self, qt: u32) -> u8 {
        if qt < self.b {
            FULL
        } else if qt < self.c {
            PARTIAL
        } else {
            EMPTY
        }
    }
}

/// The block lists at every shape of `tiles`, in order.
pub(crate) fn build_masks(sm: &Summary, tiles: &[TileShape]) -> Result<Vec<BlockMask>> {
    // One sweep state for every shape: its buffers are allocated (and their pages touched) once.
    let mut sweep = Sweep::default();
    tiles.iter().map(|&t| build(sm, t, &mut sweep)).collect()
}

fn build(sm: &Summary, tile: TileShape, sweep: &mut Sweep) -> Result<BlockMask> {
    let (n, rows) = (sm.n, sm.rows);
    let (bq, bk) = (tile.block_q(), tile.block_k());
    let (q_tiles, k_tiles) = (n.div_ceil(bq), n.div_ceil(bk));
    let mut qb = RunListBuilder::new(rows * q_tiles);
    let mut kb = RunListBuilder::new(rows * k_tiles);
    let mut stats = TileStats {
        visible_pairs: sm.visible_pairs,
        ..Default::default()
    };
    sweep.reset(q_tiles, k_tiles);
    let dq = Divider::new(bq);
    for r in 0..rows {
        let ch = sm.row(r);
        for (kt, kd) in sweep.k.iter_mut().enumerate() {
            let k0 = kt * bk;
            let k1 = (k0 + bk).min(n);
            let inside = k0 + bk <= n;
            let maxv = ch.max(k0, k1) as usize;
            let minv = ch.min(k0, k1) as usize;
            let a = dq.div_ceil(k1 - 1, bq);
            let b = if inside { a.max(dq.div(minv)) } else { a };
            let c = b.max(dq.div_ceil(maxv, bq));
            // Diagonal q tiles [d0, a): PARTIAL iff a key j < q1 has vis_end[j] > max(j, q0).
            let d0 = dq.div(k0);
            let mut diag = 0u32;
            for qt in d0..a {
                let (q0, q1) = (qt * bq, (qt + 1) * bq);
                let before = k1.min(q0);
                let from = k0.max(q0);
                let until = k1.min(q1);
                let seen = (before > k0 && ch.max(k0, before) as usize > q0)
                    || (until > from && ch.any_seen(from, until));
                if seen {
                    diag |= 1 << (qt - d0);
                    kb.push(qt, 1, true);
                }
            }
            if b > a {
                kb.push(a, b - a, false);
            }
            if c > b {
                kb.push(b, c - b, true);
            }
            kb.end_slot()?;
            stats.full += (b - a) as u64;
            stats.partial += (c - b) as u64 + diag.count_ones() as u64;
            *kd = KTile {
                a: a as u32,
                b: b as u32,
                c: c as u32,
                diag,
            };
        }
        sweep.q_major(&mut qb, bq, bk, dq, Divider::new(bk))?;
    }
    stats.empty = (rows * q_tiles * k_tiles) as u64 - stats.full - stats.partial;
    Ok(BlockMask {
        tile,
        n,
        rows,
        q_tiles,
        k_tiles,
        q: qb.finish(),
        k: kb.finish(),
        stats,
    })
}

/// The q-major sweep's state, reused from row to row and from tile shape to tile shape.
#[derive(Default)]
struct Sweep {
    q_tiles: usize,
    /// The row's k tiles (filled by the k-major pass).
    k: Vec<KTile>,
    /// Class of each entered k tile at the current q tile.
    class: Vec<u8>,
    /// Whether the class changes at k tile p (p == 0 or class[p] != class[p - 1]) ...
    starts: Vec<bool>,
    /// ... and those positions, ordered: the entered prefix's runs start there.
    start_set: BTreeSet<u32>,
    /// Events: the k tiles whose class changes at q tile t are
    /// `event_kt[event_at[t] .. event_at[t + 1]]`.
    event_at: Vec<u32>,
    event_kt: Vec<u32>,
    dirty: Vec<u32>,
}

impl Sweep {
    /// Sized for a tile shape's rows of `q_tiles` by `k_tiles`.
    fn reset(&mut self, q_tiles: usize, k_tiles: usize) {
        self.q_tiles = q_tiles;
        self.k.resize(k_tiles, KTile::default());
        self.class.resize(k_tiles, EMPTY);
        self.starts.clear();
        self.starts.resize(k_tiles, false);
        self.event_at.resize(q_tiles + 2, 0);
    }

    /// The q-major lists of the row whose k tiles `self.k` holds.
    fn q_major(
        &mut self,
        qb: &mut RunListBuilder,
        bq: usize,
        bk: usize,
        dq: Divider,
        dk: Divider,
    ) -> Result<()> {
        let (q_tiles, k_tiles) = (self.q_tiles, self.k.len());
        // Bucket the events by q tile (a counting sort): a k tile changes class at b (FULL to
        // PARTIAL or EMPTY) and at c (PARTIAL to EMPTY) when they fall after its entry at a.
        let events = |k: &KTile| {
            let b = (k.b > k.a && (k.b as usize) < q_tiles).then_some(k.b);
            let c = (k.c > k.b && k.c > k.a && (k.c as usize) < q_tiles).then_some(k.c);
            b.into_iter().chain(c)
        };
        self.event_at.fill(0);
        for k in &self.k {
            for t in events(k) {
                self.event_at[t as usize + 2] += 1;
            }
        }
        for t in 2..self.event_at.len() {
            self.event_at[t] += self.event_at[t - 1];
        }
        let total = self.event_at[q_tiles + 1] as usize;
        self.event_kt.clear();
        self.event_kt.resize(total, 0);
        for (kt, k) in self.k.iter().enumerate() {
            for t in events(k) {
                let at = &mut self.event_at[t as usize + 1];
                self.event_kt[*at as usize] = kt as u32;
                *at += 1;
            }
        }
        // Now event_at[t] .. event_at[t + 1] are q tile t's events.

        self.start_set.clear();
        let mut entered = 0usize;
        for qt in 0..q_tiles {
            let q = qt as u32;
            while entered < k_tiles && self.k[entered].a <= q {
                self.class[entered] = self.k[entered].class_at(q);
                self.dirty.push(entered as u32);
                entered += 1;
            }
            for e in self.event_at[qt]..self.event_at[qt + 1] {
                let kt = self.event_kt[e as usize];
                self.class[kt as usize] = self.k[kt as usize].class_at(q);
                self.dirty.extend([kt, kt + 1]);
            }
            for p in self.dirty.drain(..) {
                let pu = p as usize;
                if pu >= entered {
                    continue; // checked when it enters
                }
                let start = pu == 0 || self.class[pu] != self.class[pu - 1];
                if start != self.starts[pu] {
                    self.starts[pu] = start;
                    if start {
                        self.start_set.insert(p);
                    } else {
                        self.start_set.remove(&p);
                    }
                }
            }
            // The entered prefix's runs, EMPTY ones left out.
            let mut starts = self.start_set.iter().peekable();
            while let Some(&s) = starts.next() {
                let e = starts.peek().map_or(entered, |&&e| e as usize);
                let class = self.class[s as usize];
                if class != EMPTY {
                    qb.push(s as usize, e - s as usize, class == PARTIAL);
                }
            }
            // The diagonal k tiles: not entered yet, starting before the q tile ends.
            let k_end = dk.div_ceil((qt + 1) * bq, bk).min(k_tiles);
            for kt in entered..k_end {
                let d = qt - dq.div(kt * bk);
                if self.k[kt].diag >> d & 1 != 0 {
                    qb.push(kt, 1, true);
                }
            }
            qb.end_slot()?;
        }
        // Leave the per-k-tile state clean for the next row.
        self.starts.fill(false);
        Ok(())
    }
}
