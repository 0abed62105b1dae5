//! `TileShape::new` and `BlockMask::build` against brute force: for random valid `vis_end`
//! (causal, padding, packed and nested layouts, random) and tile shapes, every (row, q tile,
//! k tile) class equals the class of its padded rectangle (EMPTY: no pair visible; FULL: every
//! pair visible, so a ragged tile never is; PARTIAL: the rest), the q-major and k-major lists
//! (accessors and raw CSR arrays) are exactly the non-empty tiles in ascending order with their
//! classes, the stats count what the rectangles hold, and both launch orders are permutations
//! by non-increasing list length.
#![no_main]
// Tile indices index the brute-force table and the crate's lists at once.
#![allow(clippy::needless_range_loop)]

use fuzz_oracle::input::Input;
use fuzz_oracle::rule::{sees, visible_pairs};
use fuzz_oracle::{note, planted};
use libfuzzer_sys::fuzz_target;
use prefix_attn::ffi::params::{PA_TILE_INDEX_SHIFT, PA_TILE_PARTIAL_BIT};
use prefix_attn::mask::{BlockMask, ListArrays, TileClass, TileShape, VisEnd};
use prefix_attn::Error;

/// Fills `vis[lo..hi]` as a nested layout: a shared prefix seen by the whole block, then
/// child blocks (documents, completions, subtrees) and padding.
fn nested(inp: &mut Input, vis: &mut [i32], lo: usize, hi: usize, depth: usize) {
    if lo >= hi {
        return;
    }
    let len = hi - lo;
    let prefix = inp.int(1, len);
    for v in &mut vis[lo..lo + prefix] {
        *v = hi as i32;
    }
    let mut at = lo + prefix;
    while at < hi {
        let child = inp.int(1, hi - at);
        match inp.byte() {
            0..=39 => {
                for (j, v) in vis.iter_mut().enumerate().take(at + child).skip(at) {
                    *v = j as i32; // padding
                }
            }
            40..=127 if depth < 4 => nested(inp, vis, at, at + child, depth + 1),
            _ => {
                for v in &mut vis[at..at + child] {
                    *v = (at + child) as i32; // a document / completion
                }
            }
        }
        at += child;
    }
}

fn gen_row(inp: &mut Input, n: usize) -> Vec<i32> {
    match inp.int(0, 5) {
        0 => vec![n as i32; n],
        1 => (0..n as i32).collect(),
        2 => (0..n).map(|j| inp.int(j, n) as i32).collect(),
        3 => {
            // Mostly-causal with holes: many FULL tiles with a few PARTIAL ones.
            (0..n)
                .map(|j| {
                    if inp.chance(20) {
                        inp.int(j, n) as i32
                    } else {
                        n as i32
                    }
                })
                .collect()
        }
        _ => {
            let mut vis = vec![0i32; n];
            // Top level: packed blocks.
            let mut at = 0;
            while at < n {
                let len = inp.int(1, n - at);
                nested(inp, &mut vis, at, at + len, 0);
                at += len;
            }
            vis
        }
    }
}

/// The class of tile (qt, kt) of `row` over its padded rectangle.
fn brute(row: &[i32], bq: usize, bk: usize, qt: usize, kt: usize) -> TileClass {
    let n = row.len();
    let (mut any, mut all) = (false, true);
    for i in qt * bq..(qt + 1) * bq {
        for j in kt * bk..(kt + 1) * bk {
            let v = i < n && j < n && sees(row, i, j);
            any |= v;
            // Planted: padding past the row does not count against FULL.
            all &= v || (planted("ragged") && (i >= n || j >= n));
        }
    }
    if !any {
        TileClass::Empty
    } else if all {
        TileClass::Full
    } else {
        TileClass::Partial
    }
}

/// An entry as the kernels read it: `tile << PA_TILE_INDEX_SHIFT | partial bit`.
fn decode(e: i32) -> (usize, TileClass) {
    assert!(e >= 0, "negative entry {e}");
    let partial = e & PA_TILE_PARTIAL_BIT as i32 != 0;
    let rest = e & !(PA_TILE_PARTIAL_BIT as i32);
    assert_eq!(
        rest & ((1 << PA_TILE_INDEX_SHIFT) - 1),
        0,
        "stray bits in entry {e:#x}"
    );
    let class = if partial {
        TileClass::Partial
    } else {
        TileClass::Full
    };
    ((e >> PA_TILE_INDEX_SHIFT) as usize, class)
}

/// One direction's uploaded arrays decoded by the ABI (csrc/pa_params.h, `PaTileRun`), written
/// here from the format's statement, not with the crate's decoder: slot `s` owns runs
/// `offsets[s] .. offsets[s + 1]`; run `r` is (`base`, `end`), `end` the slot's list length
/// through the run (strictly increasing within the slot), and list position `i` of the run
/// (from the previous run's `end`, or 0, up to its own `end`) is the entry `base + (i << SHIFT)`.
/// Returns every slot's list.
fn decode_lists(a: ListArrays<'_>, slots: usize, what: &str) -> Vec<Vec<(usize, TileClass)>> {
    let offsets = a.offsets;
    assert_eq!(offsets.len(), slots + 1, "{what} offsets");
    assert_eq!(offsets[0], 0, "{what} offsets[0]");
    assert!(
        offsets.windows(2).all(|w| w[0] <= w[1]),
        "{what} offsets decrease"
    );
    assert_eq!(
        2 * *offsets.last().unwrap() as usize,
        a.runs.len(),
        "{what}: two int32 per run"
    );
    (0..slots)
        .map(|s| {
            let mut list = Vec::new();
            let mut begin = 0i32;
            for r in offsets[s] as usize..offsets[s + 1] as usize {
                let (base, end) = (a.runs[2 * r], a.runs[2 * r + 1]);
                assert!(
                    end > begin,
                    "{what} slot {s}: run {r} ends at {end} <= {begin}"
                );
                let class = decode(base + (begin << PA_TILE_INDEX_SHIFT)).1;
                for i in begin..end {
                    let (t, c) = decode(base + (i << PA_TILE_INDEX_SHIFT));
                    assert_eq!(c, class, "{what} slot {s}: one class per run");
                    list.push((t, c));
                }
                begin = end;
            }
            list
        })
        .collect()
}

/// Slots in launch order: a permutation, by non-increasing list length (`lens`), ties in slot
/// order.
fn check_order(order: &[i32], lens: &[usize], what: &str) {
    let slots = lens.len();
    let mut seen = vec![false; slots];
    for &s in order {
        let s = usize::try_from(s).expect("slot index");
        assert!(
            s < slots && !seen[s],
            "{what}: slot {s} out of range or twice"
        );
        seen[s] = true;
    }
    assert_eq!(order.len(), slots, "{what}: not a permutation");
    let len = |s: i32| lens[s as usize];
    for w in order.windows(2) {
        assert!(
            len(w[0]) > len(w[1]) || (len(w[0]) == len(w[1]) && w[0] < w[1]),
            "{what}: order {w:?}"
        );
    }
}

fn side(inp: &mut Input) -> usize {
    if inp.chance(235) {
        16 * inp.int(1, 16)
    } else {
        inp.pick(&[
            0,
            1,
            8,
            15,
            17,
            24,
            100,
            250,
            257,
            264,
            272,
            512,
            usize::MAX,
        ])
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut inp = Input::new(bytes);
    let (bq, bk) = (side(&mut inp), side(&mut inp));
    let ok = |b: usize| b > 0 && b.is_multiple_of(16) && b <= 256;
    let tile = match TileShape::new(bq, bk) {
        Ok(t) => {
            assert!(ok(bq) && ok(bk), "accepted tile {bq} x {bk}");
            assert_eq!((t.block_q(), t.block_k()), (bq, bk));
            t
        }
        Err(e) => {
            assert!(!(ok(bq) && ok(bk)), "refused tile {bq} x {bk}: {e:?}");
            assert_eq!(
                e,
                Error::InvalidTileShape {
                    block_q: bq,
                    block_k: bk
                }
            );
            note("tile refused");
            return;
        }
    };
    let rows = inp.int(1, 3);
    let n = match inp.byte() {
        0..=29 => bq.max(bk) * inp.int(1, 2).min(200 / bq.max(bk)).max(1),
        30..=59 => inp.int(1, 17),
        _ => inp.int(1, 200),
    };
    let data: Vec<Vec<i32>> = (0..rows).map(|_| gen_row(&mut inp, n)).collect();
    let vis = VisEnd::from_rows(&data).expect("generated rows are valid");
    let mask = BlockMask::build(&vis, tile).expect("build of a valid VisEnd");

    let (qts, kts) = (n.div_ceil(bq), n.div_ceil(bk));
    assert_eq!((mask.n(), mask.rows(), mask.tile()), (n, rows, tile));
    assert_eq!((mask.q_tiles(), mask.k_tiles()), (qts, kts));
    let (qa, ka) = (mask.q_major(), mask.k_major());
    let q_raw = decode_lists(qa, rows * qts, "q-major");
    let k_raw = decode_lists(ka, rows * kts, "k-major");

    let (mut full, mut partial, mut empty, mut pairs) = (0u64, 0u64, 0u64, 0u64);
    for (r, row) in data.iter().enumerate() {
        pairs += visible_pairs(row);
        let classes: Vec<Vec<TileClass>> = (0..qts)
            .map(|qt| (0..kts).map(|kt| brute(row, bq, bk, qt, kt)).collect())
            .collect();
        for (qt, line) in classes.iter().enumerate() {
            let want: Vec<(usize, TileClass)> = line
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c != TileClass::Empty)
                .map(|(kt, &c)| (kt, c))
                .collect();
            let got: Vec<_> = mask.q_list(r, qt).collect();
            assert_eq!(
                got, want,
                "row {r} q tile {qt}, tile {bq}x{bk}, vis_end {row:?}"
            );
            assert_eq!(
                q_raw[r * qts + qt],
                want,
                "raw q-major runs, row {r} q tile {qt}"
            );
            for (kt, &c) in line.iter().enumerate() {
                assert_eq!(mask.class(r, qt, kt), c, "class row {r} ({qt}, {kt})");
                match c {
                    TileClass::Full => full += 1,
                    TileClass::Partial => partial += 1,
                    TileClass::Empty => empty += 1,
                }
            }
        }
        for kt in 0..kts {
            let want: Vec<(usize, TileClass)> = (0..qts)
                .map(|qt| (qt, classes[qt][kt]))
                .filter(|&(_, c)| c != TileClass::Empty)
                .collect();
            let got: Vec<_> = mask.k_list(r, kt).collect();
            assert_eq!(
                got, want,
                "row {r} k tile {kt}, tile {bq}x{bk}, vis_end {row:?}"
            );
            assert_eq!(
                k_raw[r * kts + kt],
                want,
                "raw k-major runs, row {r} k tile {kt}"
            );
        }
    }
    let st = mask.stats();
    note(if st.full > 0 && st.partial > 0 {
        "full and partial tiles"
    } else if st.full > 0 {
        "full tiles only"
    } else {
        "no full tile"
    });
    assert_eq!(st.visible_pairs, pairs, "visible pairs");
    assert_eq!(
        (st.full, st.partial, st.empty),
        (full, partial, empty),
        "tiles by class"
    );
    assert_eq!(st.total(), (rows * qts * kts) as u64);
    assert_eq!(st.non_empty(), full + partial);
    assert_eq!(mask.forward_flops(3, 8), 4.0 * pairs as f64 * 24.0);
    let lens = |lists: &[Vec<(usize, TileClass)>]| lists.iter().map(Vec::len).collect::<Vec<_>>();
    check_order(mask.heaviest_first(), &lens(&q_raw), "heaviest_first");
    assert_eq!(qa.order, mask.heaviest_first());
    check_order(mask.k_heaviest_first(), &lens(&k_raw), "k_heaviest_first");
    assert_eq!(ka.order, mask.k_heaviest_first());
});
