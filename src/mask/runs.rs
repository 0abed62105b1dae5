//! Block lists as runs: how a [`super::BlockMask`] stores one direction of its lists, exactly as
//! the kernels read it (csrc/pa_params.h, `PaBlockList` and `PaTileRun`).
//!
//! A slot is a (row, tile) of the list's major axis: `row * tiles + tile`. Its list (the
//! non-empty tiles of the other axis, ascending) is cut into runs of consecutive tiles of one
//! class, two int32 each:
//!
//! - `base = (first - begin) << PA_TILE_INDEX_SHIFT | partial`, where `begin` is the position of
//!   the run's first tile in the slot's list (0 for the first run, else the previous run's `end`);
//! - `end`: the positions the slot's list has through this run (cumulative).
//!
//! So a kernel walking positions `i = 0, 1, ..` of its list reads the tile as `base + (i <<
//! PA_TILE_INDEX_SHIFT)` (the per-tile entry encoding, `tile << SHIFT | partial`) and moves to
//! the next run when `i` reaches `end`; and the slot's length is its last run's `end`, which the
//! heaviest-first order and the kernels read in O(1).

use crate::error::{Error, Result};
use crate::ffi::params::{PA_TILE_INDEX_SHIFT, PA_TILE_PARTIAL_BIT};

use super::block::TileClass;

/// One run of a list: `count` consecutive tiles from `first`, all of `class` (FULL or PARTIAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileRun {
    pub first: usize,
    pub count: usize,
    pub class: TileClass,
}

impl TileRun {
    /// The run's tiles with their class, ascending.
    pub fn tiles(self) -> impl Iterator<Item = (usize, TileClass)> {
        (self.first..self.first + self.count).map(move |t| (t, self.class))
    }
}

/// One direction's arrays as uploaded (`PaBlockList`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListArrays<'a> {
    /// `slots + 1` run indices: slot `s` owns runs `offsets[s] .. offsets[s + 1]`.
    pub offsets: &'a [i32],
    /// Two int32 per run (`PaTileRun`: `base`, `end`; see the module documentation).
    pub runs: &'a [i32],
    /// Every slot once, the ones with the most tiles first (ties in slot order): the launch
    /// order.
    pub order: &'a [i32],
}

/// One direction's lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RunLists {
    pub(crate) offsets: Vec<i32>,
    pub(crate) runs: Vec<i32>,
    pub(crate) order: Vec<i32>,
}

const SHIFT: i32 = PA_TILE_INDEX_SHIFT as i32;
const PARTIAL: i32 = PA_TILE_PARTIAL_BIT as i32;

fn class_of(base: i32) -> TileClass {
    if base & PARTIAL != 0 {
        TileClass::Partial
    } else {
        TileClass::Full
    }
}

impl RunLists {
    pub(crate) fn arrays(&self) -> ListArrays<'_> {
        ListArrays {
            offsets: &self.offsets,
            runs: &self.runs,
            order: &self.order,
        }
    }

    fn slot(&self, s: usize) -> std::ops::Range<usize> {
        self.offsets[s] as usize..self.offsets[s + 1] as usize
    }

    /// Position of run `r`'s first tile in its slot's list (`lo`: the slot's first run).
    fn begin(&self, lo: usize, r: usize) -> i32 {
        if r == lo {
            0
        } else {
            self.runs[2 * r - 1]
        }
    }

    /// The runs of slot `s`, decoded.
    pub(crate) fn runs_of(&self, s: usize) -> impl Iterator<Item = TileRun> + '_ {
        let range = self.slot(s);
        let lo = range.start;
        range.map(move |r| {
            let (base, end) = (self.runs[2 * r], self.runs[2 * r + 1]);
            let begin = self.begin(lo, r);
            TileRun {
                first: ((base >> SHIFT) + begin) as usize,
                count: (end - begin) as usize,
                class: class_of(base),
            }
        })
    }

    /// The class of `tile` in slot `s`: a binary search over the slot's runs.
    pub(crate) fn class_in(&self, s: usize, tile: usize) -> TileClass {
        let range = self.slot(s);
        let lo = range.start;
        let first = |r: usize| ((self.runs[2 * r] >> SHIFT) + self.begin(lo, r)) as usize;
        // The first run starting after `tile`.
        let (mut a, mut b) = (range.start, range.end);
        while a < b {
            let m = a + (b - a) / 2;
            if first(m) <= tile {
                a = m + 1;
            } else {
                b = m;
            }
        }
        let idx = a;
        if idx == lo {
            return TileClass::Empty;
        }
        let r = idx - 1;
        let end = self.runs[2 * r + 1] as usize;
        if tile < first(r) + end - self.begin(lo, r) as usize {
            class_of(self.runs[2 * r])
        } else {
            TileClass::Empty
        }
    }

    /// Tiles per slot: each slot's last run's end, O(1) per slot.
    pub(crate) fn lengths(&self) -> Vec<i32> {
        self.offsets
            .windows(2)
            .map(|w| {
                if w[1] > w[0] {
                    self.runs[2 * w[1] as usize - 1]
                } else {
                    0
                }
            })
            .collect()
    }

    /// Bytes uploaded: every array, an empty one as one element.
    pub(crate) fn bytes(&self) -> usize {
        4 * [&self.offsets, &self.runs, &self.order]
            .iter()
            .map(|a| a.len().max(1))
            .sum::<usize>()
    }
}

/// Writes one direction slot by slot: runs pushed in ascending tile order, adjacent runs of one
/// class merged, then the launch order from the slots' lengths.
pub(crate) struct RunListBuilder {
    lists: RunLists,
    /// Tiles of the current slot so far.
    pos: i32,
    /// The tile after the slot's last run and that run's PARTIAL flag, or -1 before the slot's
    /// first run: whether a push extends the last run, without reading it back.
    next: i32,
    flag: i32,
}

impl RunListBuilder {
    pub(crate) fn new(slots: usize) -> Self {
        let mut offsets = Vec::with_capacity(slots + 1);
        offsets.push(0);
        Self {
            lists: RunLists {
                offsets,
                runs: Vec::with_capacity(4 * slots),
                order: Vec::new(),
            },
            pos: 0,
            next: -1,
            flag: 0,
        }
    }

    /// Appends `count` tiles from `first` (past every tile of the slot so far) of one class.
    #[inline]
    pub(crate) fn push(&mut self, first: usize, count: usize, partial: bool) {
        debug_assert!(count > 0);
        let (first, count) = (first as i32, count as i32);
        let flag = if partial { PARTIAL } else { 0 };
        debug_assert!(self.next <= first, "runs ascend");
        let runs = &mut self.lists.runs;
        self.pos += count;
        if first == self.next && flag == self.flag {
            let last = runs.len() - 1;
            runs[last] = self.pos;
        } else {
            runs.extend_from_slice(&[((first - (self.pos - count)) << SHIFT) | flag, self.pos]);
            self.flag = flag;
        }
        self.next = first + count;
    }

    /// Opens the current slot with runs already encoded for a slot's start (`base`, `end` pairs;
    /// `next`: the tile after the last, -1 for none; `flag`: its PARTIAL bit).
    #[inline]
    pub(crate) fn open_slot_with(&mut self, runs: &[i32], next: i32, flag: i32) {
        debug_assert!(self.pos == 0 && self.next == -1, "at a slot's start");
        if let Some(&end) = runs.last() {
            self.lists.runs.extend_from_slice(runs);
            self.pos = end;
            self.next = next;
            self.flag = flag;
        }
    }

    /// Closes the current slot.
    pub(crate) fn end_slot(&mut self) -> Result<()> {
        let n = self.lists.runs.len() / 2;
        if n > i32::MAX as usize {
            return Err(Error::IndexOverflow {
                what: "block-list runs",
                value: n as u128,
            });
        }
        self.lists.offsets.push(n as i32);
        self.pos = 0;
        self.next = -1;
        Ok(())
    }

    /// The lists with their launch order.
    pub(crate) fn finish(mut self) -> RunLists {
        self.lists.order = heaviest_first(&self.lists.lengths());
        self.lists
    }
}

/// Slots ordered by decreasing length, ties in slot order: a counting sort, O(slots + longest).
fn heaviest_first(counts: &[i32]) -> Vec<i32> {
    let longest = counts.iter().copied().max().unwrap_or(0) as usize;
    // start[b]: where bucket b (length longest - b) begins in the order.
    let mut start = vec![0usize; longest + 2];
    for &c in counts {
        start[longest - c as usize + 1] += 1;
    }
    for b in 1..start.len() {
        start[b] += start[b - 1];
    }
    let mut order = vec![0i32; counts.len()];
    for (s, &c) in counts.iter().enumerate() {
        let at = &mut start[longest - c as usize];
        order[*at] = s as i32;
        *at += 1;
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_runs_of_one_class_merge_and_decode() {
        let mut b = RunListBuilder::new(3);
        b.push(0, 2, false);
        b.push(2, 1, false); // merges: 0..3 FULL
        b.push(3, 1, true);
        b.push(5, 2, true); // a gap: a new run
        b.end_slot().unwrap();
        b.end_slot().unwrap(); // an empty slot
        b.push(7, 1, true);
        b.end_slot().unwrap();
        let l = b.finish();
        let run = |first, count, class| TileRun {
            first,
            count,
            class,
        };
        use TileClass::{Empty, Full, Partial};
        assert_eq!(
            l.runs_of(0).collect::<Vec<_>>(),
            vec![run(0, 3, Full), run(3, 1, Partial), run(5, 2, Partial)]
        );
        assert_eq!(l.runs_of(1).count(), 0);
        assert_eq!(l.runs_of(2).collect::<Vec<_>>(), vec![run(7, 1, Partial)]);
        // The kernels' reading: entry(i) = base + (i << SHIFT) within a run, slot length = the
        // last end.
        assert_eq!(l.runs, vec![0, 3, 1, 4, (1 << 1) | 1, 6, (7 << 1) | 1, 1]);
        let classes: Vec<_> = (0..9).map(|t| l.class_in(0, t)).collect();
        assert_eq!(
            classes,
            [Full, Full, Full, Partial, Empty, Partial, Partial, Empty, Empty]
        );
        assert_eq!(l.class_in(1, 0), Empty);
        assert_eq!(l.order, vec![0, 2, 1]);
        assert_eq!(l.bytes(), 4 * (4 + 8 + 3));
    }

    #[test]
    fn the_order_is_by_decreasing_length_then_slot() {
        assert_eq!(heaviest_first(&[1, 3, 0, 3, 1]), vec![1, 3, 0, 4, 2]);
        assert_eq!(heaviest_first(&[]), Vec::<i32>::new());
        assert_eq!(heaviest_first(&[0, 0]), vec![0, 1]);
    }
}
