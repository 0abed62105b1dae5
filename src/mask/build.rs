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
//! the classes of the prefix and the ascending positions where the class changes, which together
//! are the prefix's runs; the q tile's list is those runs (EMPTY ones left out) followed by the
//! diagonal k tiles `[kb, ceil(q1 / block_k))`, each PARTIAL or EMPTY as found above. The prefix
//! opens every q tile's list, so its runs are kept encoded as the kernels read them and copied
//! whole into each slot, re-encoded only when a class changes.
//!
//! Cost per tile shape and row: O(tokens / 16 * (block_k / block_q + 2)) for the maxima and the
//! diagonal tiles; O(k tiles + q tiles + events) for the sweep plus, at a q tile where classes
//! change, O(changes * starts) to move the run starts and re-encode (the starts are at most twice
//! the runs of that q tile's list, plus one); and the runs written. A causal row has two runs per
//! tile in each direction and no class change after entry; packed documents and prefix +
//! completions rows a few runs and a few changes per document or sample. The stats come from the
//! runs (tile counts) and the summary (visible pairs). The shapes of one plan are independent and
//! are built on the machine's cores (batches of 128k tokens and more).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Result;
use crate::ffi::params::PA_TILE_INDEX_SHIFT;
use crate::mask::block::{BlockMask, TileShape, TileStats};
use crate::mask::rule::VisEnd;
use crate::mask::runs::RunListBuilder;

/// Tokens per chunk: every tile side is a multiple of it.
const CHUNK: usize = 16;

/// Batches of at least this many tokens (rows * n) build their tile shapes on several threads:
/// about 0.5 ms of work for five shapes, where starting a thread (0.05 to 0.1 ms measured on a
/// 2-core VM) costs a fraction of what it saves.
const PARALLEL_TOKENS: usize = 128 * 1024;

/// What the lists of every tile shape are built from: per 16-token chunk of every row, the
/// largest and smallest `vis_end`, how many chunks before it have a key anyone sees, and the
/// visible pairs.
pub(crate) struct Summary {
    n: usize,
    rows: usize,
    /// Chunks per row, ceil(n / 16); the last one covers the row's last tokens only.
    chunks: usize,
    max: Vec<i32>,
    min: Vec<i32>,
    /// Per row, `chunks + 1` counts: chunks before c with a key anyone sees (`vis_end[j] > j`).
    seen_before: Vec<u32>,
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
            seen_before: Vec::with_capacity(rows * (chunks + 1)),
            visible_pairs: 0,
        };
        for r in 0..rows {
            let row = vis_end.row(r);
            s.seen_before.push(0);
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
        let before = *self.seen_before.last().expect("a row's first count");
        self.seen_before.push(before + (pairs > 0) as u32);
        self.visible_pairs += pairs as u64;
    }

    fn row(&self, r: usize) -> RowChunks<'_> {
        let at = r * self.chunks..(r + 1) * self.chunks;
        RowChunks {
            max: &self.max[at.clone()],
            min: &self.min[at.clone()],
            seen_before: &self.seen_before[r * (self.chunks + 1)..(r + 1) * (self.chunks + 1)],
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
    seen_before: &'a [u32],
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
        let r = Self::range(t0, t1);
        self.seen_before[r.end] > self.seen_before[r.start]
    }
}

/// Division by a tile side without a divide instruction (tens of cycles each, several per tile
/// otherwise): `floor(x / d) = (x * m) >> s` with `m = ceil(2^s / d)`, `s = 32 + ceil(log2 d)`,
/// exact for every x below 2^32 (Granlund and Montgomery, 1994), which every token index and
/// tile boundary is (n < 2^31, tile sides at most 256).
#[derive(Clone, Copy)]
struct Divider {
    m: u64,
    /// ceil(log2 d): s = 32 + l.
    l: u32,
}

impl Divider {
    fn new(d: usize) -> Self {
        debug_assert!(d > 0 && d <= 1 << 16);
        let l = usize::BITS - (d - 1).leading_zeros(); // ceil(log2 d)
        Self {
            m: (1u128 << (32 + l)).div_ceil(d as u128) as u64,
            l,
        }
    }

    #[inline(always)]
    fn div(self, x: usize) -> usize {
        debug_assert!(x < 1 << 32);
        // m < 2^33 and x < 2^32: one widening multiply, then shifts by a constant and by l.
        (((x as u64 as u128 * self.m as u128) >> 32) as u64 >> self.l) as usize
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
/// `c`; bit d of `diag` says q tile `d0 + d` (below `a`) is PARTIAL.
#[derive(Clone, Copy, Default)]
struct KTile {
    a: u32,
    b: u32,
    c: u32,
    /// The first diagonal q tile, floor(k0 / block_q).
    d0: u32,
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
    // The shapes are independent: with more than one core and a batch worth it, threads build
    // them, the largest first, each thread taking the next shape when done. The lists do not
    // depend on who built them.
    let threads = if sm.rows * sm.n >= PARALLEL_TOKENS {
        crate::cpu::available_threads().min(tiles.len())
    } else {
        1
    };
    if threads <= 1 {
        // One sweep state for every shape: its buffers are allocated (and their pages touched)
        // once.
        let mut sweep = Sweep::default();
        return tiles.iter().map(|&t| build(sm, t, &mut sweep)).collect();
    }
    let cost = |t: &TileShape| sm.n / t.block_q() + sm.n / t.block_k();
    let mut order: Vec<usize> = (0..tiles.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cost(&tiles[i])));
    let next = AtomicUsize::new(0);
    let work = || {
        let mut sweep = Sweep::default();
        let mut built = Vec::new();
        loop {
            let u = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = order.get(u) else {
                return built;
            };
            built.push((i, build(sm, tiles[i], &mut sweep)));
        }
    };
    let parts: Vec<Vec<(usize, Result<BlockMask>)>> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut parts = vec![work()];
        for helper in helpers {
            match helper.join() {
                Ok(part) => parts.push(part),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
        parts
    });
    let mut masks: Vec<Option<Result<BlockMask>>> = (0..tiles.len()).map(|_| None).collect();
    for (i, mask) in parts.into_iter().flatten() {
        masks[i] = Some(mask);
    }
    masks
        .into_iter()
        .map(|m| m.expect("every shape is built exactly once"))
        .collect()
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
                d0: d0 as u32,
                diag,
            };
        }
        sweep.q_major(&mut qb, bq, bk)?;
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
    /// ... and those positions, ascending: the entered prefix's runs start there. A sorted
    /// vector: each change costs a move of the starts after it, no more than re-encoding the
    /// prefix, which every change does anyway (O(starts), and the starts are at most twice the
    /// runs the q tile lists, plus one).
    start_list: Vec<u32>,
    /// The prefix's runs (EMPTY ones left out) encoded as they open a slot's list (the prefix's
    /// k tiles come first in every q tile's list, so the encoding does not depend on the q tile):
    /// copied whole into each slot.
    prefix: Vec<i32>,
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

    /// Marks whether k tile `p` (entered) starts a run, keeping the ordered set in step; true when
    /// the set changed.
    #[inline]
    fn mark(&mut self, p: usize) -> bool {
        let start = p == 0 || self.class[p] != self.class[p - 1];
        if start == self.starts[p] {
            return false;
        }
        self.starts[p] = start;
        let at = self.start_list.partition_point(|&s| s < p as u32);
        if start {
            self.start_list.insert(at, p as u32);
        } else {
            self.start_list.remove(at);
        }
        true
    }

    /// Encodes the runs of the entered prefix `[0, entered)` from the run starts (EMPTY runs left
    /// out: positions count listed tiles only); returns the tile after the last run (-1 without
    /// runs) and that run's PARTIAL bit.
    fn encode_prefix(&mut self, entered: usize) -> (i32, i32) {
        self.prefix.clear();
        let (mut next, mut last_flag) = (-1, 0);
        let mut pos = 0i32;
        for (i, &s) in self.start_list.iter().enumerate() {
            let e = self.start_list.get(i + 1).map_or(entered as u32, |&e| e);
            let class = self.class[s as usize];
            if class == EMPTY {
                continue;
            }
            let flag = (class == PARTIAL) as i32;
            self.prefix
                .push(((s as i32 - pos) << PA_TILE_INDEX_SHIFT) | flag);
            pos += (e - s) as i32;
            self.prefix.push(pos);
            next = e as i32;
            last_flag = flag;
        }
        (next, last_flag)
    }

    /// The q-major lists of the row whose k tiles `self.k` holds.
    fn q_major(&mut self, qb: &mut RunListBuilder, bq: usize, bk: usize) -> Result<()> {
        let (q_tiles, k_tiles) = (self.q_tiles, self.k.len());
        // Bucket the events by q tile (a counting sort): a k tile changes class at b (FULL to
        // PARTIAL or EMPTY) and at c (PARTIAL to EMPTY) when they fall after its entry at a.
        let events = |k: &KTile| {
            let b = (k.b > k.a && (k.b as usize) < q_tiles).then_some(k.b);
            let c = (k.c > k.b && k.c > k.a && (k.c as usize) < q_tiles).then_some(k.c);
            b.into_iter().chain(c)
        };
        self.event_at.fill(0);
        let mut total = 0usize;
        for k in &self.k {
            for t in events(k) {
                self.event_at[t as usize + 2] += 1;
                total += 1;
            }
        }
        if total > 0 {
            for t in 2..self.event_at.len() {
                self.event_at[t] += self.event_at[t - 1];
            }
            self.event_kt.clear();
            self.event_kt.resize(total, 0);
            for (kt, k) in self.k.iter().enumerate() {
                for t in events(k) {
                    let at = &mut self.event_at[t as usize + 1];
                    self.event_kt[*at as usize] = kt as u32;
                    *at += 1;
                }
            }
        }
        // Now event_at[t] .. event_at[t + 1] are q tile t's events (none at all when total = 0).

        self.start_list.clear();
        self.prefix.clear();
        // The tile after the prefix's last run and that run's PARTIAL bit (locals: read for every
        // q tile).
        let (mut prefix_next, mut prefix_flag) = (-1i32, 0i32);
        let mut entered = 0usize;
        let mut k_end = 0usize;
        for qt in 0..q_tiles {
            let q = qt as u32;
            let mut changed = false;
            let before = entered;
            while entered < k_tiles && self.k[entered].a <= q {
                self.class[entered] = self.k[entered].class_at(q);
                changed |= self.mark(entered);
                entered += 1;
            }
            if total > 0 {
                for e in self.event_at[qt]..self.event_at[qt + 1] {
                    let kt = self.event_kt[e as usize];
                    self.class[kt as usize] = self.k[kt as usize].class_at(q);
                    self.dirty.extend([kt, kt + 1]);
                    // A class changed: the prefix's encoding changes even where its run starts
                    // do not (a run changing class whole).
                    changed = true;
                }
                while let Some(p) = self.dirty.pop() {
                    if (p as usize) < entered {
                        changed |= self.mark(p as usize);
                    }
                }
            }
            if changed {
                (prefix_next, prefix_flag) = self.encode_prefix(entered);
            } else if entered > before && self.class[entered - 1] != EMPTY {
                // The entered k tiles carry on the prefix's last run.
                let grown = (entered - before) as i32;
                *self.prefix.last_mut().expect("a run to carry on") += grown;
                prefix_next += grown;
            }
            qb.open_slot_with(&self.prefix, prefix_next, prefix_flag);
            // The diagonal k tiles: not entered yet, starting before the q tile ends.
            let q1 = (qt + 1) * bq;
            while k_end < k_tiles && k_end * bk < q1 {
                k_end += 1;
            }
            for kt in entered..k_end {
                let k = &self.k[kt];
                if k.diag >> (q - k.d0) & 1 != 0 {
                    qb.push(kt, 1, true);
                }
            }
            qb.end_slot()?;
        }
        // Leave the per-k-tile state clean for the next row (the list holds every true flag).
        for &p in &self.start_list {
            self.starts[p as usize] = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_divider_divides_exactly() {
        for d in (16..=256).step_by(16).chain(1..=17) {
            let div = Divider::new(d);
            let mut xs: Vec<usize> = (0..4096).collect();
            xs.extend((0..=64).flat_map(|k| {
                let x = (k as u64 * 0x0400_0000).min((1 << 32) - 1) as usize;
                [x, x.saturating_sub(1), x + 1, x / d * d, x / d * d + d - 1]
            }));
            xs.push((1 << 32) - 1);
            for x in xs.into_iter().filter(|&x| x < 1 << 32) {
                assert_eq!(div.div(x), x / d, "{x} / {d}");
            }
        }
    }
}
