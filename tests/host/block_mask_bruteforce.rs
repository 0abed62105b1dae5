//! Block lists against brute force. Random batches built with the row builders (packed documents,
//! prefix + k samples, trees, padding, lengths that are not multiples of the tile) and arbitrary
//! valid `vis_end` rows are classified per (q tile, k tile) by looking at every pair of the padded
//! tile rectangle, and compared with everything `BlockMask` exposes: `class`, both directions'
//! lists (tile by tile, as runs, and as the raw arrays the kernels read), the stats and the launch
//! orders, at the shapes below and at every registered kernel's.

use crate::common;

use prefix_attn::attention::configs::{
    tile_shape, BACKWARD_DKV_FAMILY, BACKWARD_DQ_FAMILY, FORWARD_FAMILY,
};
use prefix_attn::mask::block::encode_entry;
use prefix_attn::mask::{visible, BlockMask, ListArrays, TileClass, TileRun, TileShape, VisEnd};
use prefix_attn::registry;
use prefix_attn::Error;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SHAPES: [(usize, usize); 7] = [
    (16, 16),
    (32, 64),
    (64, 32),
    (128, 128),
    (16, 48),
    (48, 16),
    (256, 16),
];

/// The class of one tile over its padded rectangle: positions past `n` are padding tokens, which
/// see nothing and are seen by nobody, so a ragged tile is never FULL.
fn brute_class(row: &[i32], tile: TileShape, qt: usize, kt: usize) -> TileClass {
    let n = row.len();
    let (mut any, mut all) = (false, true);
    for i in qt * tile.block_q()..(qt + 1) * tile.block_q() {
        for j in kt * tile.block_k()..(kt + 1) * tile.block_k() {
            let v = i < n && j < n && visible(row, i, j);
            any |= v;
            all &= v;
        }
    }
    match (any, all) {
        (false, _) => TileClass::Empty,
        (true, true) => TileClass::Full,
        (true, false) => TileClass::Partial,
    }
}

/// Every tile shape of a registered forward, dK/dV or dQ kernel.
fn registered_shapes() -> Vec<TileShape> {
    let mut t: Vec<TileShape> = [FORWARD_FAMILY, BACKWARD_DKV_FAMILY, BACKWARD_DQ_FAMILY]
        .into_iter()
        .flat_map(registry::family)
        .filter_map(|k| k.tile)
        .map(tile_shape)
        .collect();
    t.sort_by_key(|t| (t.block_q(), t.block_k()));
    t.dedup();
    t
}

/// The tiles of slot `s` as a kernel reads them from the raw arrays: positions 0.. of the list,
/// run by run, each the entry `base + (i << 1)` (csrc/attn/block_info.cuh, ListCursor), and the
/// slot's length as the kernel takes it (the last run's end).
fn kernel_walk(l: &ListArrays<'_>, s: usize) -> Vec<i32> {
    let (lo, hi) = (l.offsets[s] as usize, l.offsets[s + 1] as usize);
    let count = if hi > lo { l.runs[2 * hi - 1] } else { 0 };
    let mut out = Vec::new();
    let mut run = lo;
    for i in 0..count {
        while i >= l.runs[2 * run + 1] {
            run += 1;
        }
        out.push(l.runs[2 * run] + (i << 1));
    }
    assert!(run + 1 == hi || count == 0, "slot {s}: runs past the walk");
    out
}

/// Runs as the accessors give them: maximal (no two adjacent runs of one class touch), ascending,
/// never empty.
fn check_runs(runs: &[TileRun], what: &str) {
    assert!(runs.iter().all(|r| r.count > 0), "{what}: an empty run");
    for w in runs.windows(2) {
        assert!(
            w[0].first + w[0].count <= w[1].first,
            "{what}: runs overlap"
        );
        assert!(
            !(w[0].first + w[0].count == w[1].first && w[0].class == w[1].class),
            "{what}: adjacent runs of one class not merged"
        );
    }
}

fn check(vis: &VisEnd, tile: TileShape) {
    let mask = BlockMask::build(vis, tile).unwrap();
    let (n, rows) = (vis.n(), vis.rows());
    let (qts, kts) = (n.div_ceil(tile.block_q()), n.div_ceil(tile.block_k()));
    assert_eq!((mask.n(), mask.rows(), mask.tile()), (n, rows, tile));
    assert_eq!((mask.q_tiles(), mask.k_tiles()), (qts, kts));
    assert_eq!(mask.q_major().offsets.len(), rows * qts + 1);
    assert_eq!(mask.k_major().offsets.len(), rows * kts + 1);
    // Building several shapes at once gives each shape's lists unchanged.
    let both = BlockMask::build_all(vis, &[TileShape::new(16, 32).unwrap(), tile]).unwrap();
    assert_eq!(both[1], mask);

    let (mut full, mut partial, mut empty, mut pairs) = (0u64, 0u64, 0u64, 0u64);
    for r in 0..rows {
        let row = vis.row(r);
        for i in 0..n {
            pairs += (0..n).filter(|&j| visible(row, i, j)).count() as u64;
        }
        let classes: Vec<Vec<TileClass>> = (0..qts)
            .map(|qt| (0..kts).map(|kt| brute_class(row, tile, qt, kt)).collect())
            .collect();
        for (qt, line) in classes.iter().enumerate() {
            let want: Vec<(usize, TileClass)> = line
                .iter()
                .enumerate()
                .filter(|(_, &c)| c != TileClass::Empty)
                .map(|(kt, &c)| (kt, c))
                .collect();
            let got: Vec<_> = mask.q_list(r, qt).collect();
            assert_eq!(
                got, want,
                "row {r} q tile {qt}, tile {tile:?}, vis_end {row:?}"
            );
            check_runs(&mask.q_runs(r, qt).collect::<Vec<_>>(), "q-major");
            for (kt, &c) in line.iter().enumerate() {
                assert_eq!(mask.class(r, qt, kt), c, "class row {r} ({qt}, {kt})");
                match c {
                    TileClass::Full => full += 1,
                    TileClass::Partial => partial += 1,
                    TileClass::Empty => empty += 1,
                }
            }
        }
        // k-major is the exact transpose.
        for kt in 0..kts {
            let want: Vec<(usize, TileClass)> = classes
                .iter()
                .map(|line| line[kt])
                .enumerate()
                .filter(|&(_, c)| c != TileClass::Empty)
                .collect();
            let got: Vec<_> = mask.k_list(r, kt).collect();
            assert_eq!(
                got, want,
                "row {r} k tile {kt}, tile {tile:?}, vis_end {row:?}"
            );
            check_runs(&mask.k_runs(r, kt).collect::<Vec<_>>(), "k-major");
        }
    }
    // The raw arrays, walked as the kernels walk them, give the same entries (the accessors are
    // not the only view).
    let entries = |list: Vec<(usize, TileClass)>| -> Vec<i32> {
        list.into_iter().map(|(t, c)| encode_entry(t, c)).collect()
    };
    for s in 0..rows * qts {
        let want = entries(mask.q_list(s / qts, s % qts).collect());
        assert_eq!(kernel_walk(&mask.q_major(), s), want, "q slot {s}");
    }
    for s in 0..rows * kts {
        let want = entries(mask.k_list(s / kts, s % kts).collect());
        assert_eq!(kernel_walk(&mask.k_major(), s), want, "k slot {s}");
    }

    let stats = mask.stats();
    assert_eq!(stats.visible_pairs, pairs);
    assert_eq!(stats.visible_pairs, vis.visible_pairs());
    assert_eq!(
        (stats.full, stats.partial, stats.empty),
        (full, partial, empty)
    );
    assert_eq!(stats.total(), (rows * qts * kts) as u64);
    let k_tiles_listed: usize = (0..rows * kts)
        .map(|s| mask.k_list(s / kts, s % kts).count())
        .sum();
    assert_eq!(stats.non_empty(), k_tiles_listed as u64);
    // Bytes: both directions' three arrays.
    let bytes = |l: ListArrays<'_>| 4 * (l.offsets.len() + l.runs.len().max(1) + l.order.len());
    assert_eq!(
        mask.list_bytes(),
        bytes(mask.q_major()) + bytes(mask.k_major())
    );

    // Launch orders: permutations of the slots by non-increasing list length, ties in slot order.
    check_order(mask.heaviest_first(), rows * qts, |s| {
        mask.q_list(s / qts, s % qts).count()
    });
    check_order(mask.k_heaviest_first(), rows * kts, |s| {
        mask.k_list(s / kts, s % kts).count()
    });
}

fn check_order(order: &[i32], slots: usize, len: impl Fn(usize) -> usize) {
    let mut seen = vec![false; slots];
    for &s in order {
        assert!(
            !std::mem::replace(&mut seen[s as usize], true),
            "slot {s} twice"
        );
    }
    assert!(seen.iter().all(|&b| b), "not a permutation");
    let len = |s: i32| len(s as usize);
    for w in order.windows(2) {
        assert!(
            len(w[0]) > len(w[1]) || (len(w[0]) == len(w[1]) && w[0] < w[1]),
            "order {w:?}"
        );
    }
}

/// A valid `vis_end` row of `n` tokens drawn anyhow: each key seen by nobody, by everyone after
/// it, or by a random stretch, or by a random end; so tiles of every class sit next to each other
/// and runs are often one tile long.
fn arbitrary_row(rng: &mut StdRng, n: usize) -> Vec<i32> {
    let style = rng.random_range(0..3);
    (0..n)
        .map(|j| {
            let v = match (style, rng.random_range(0..4)) {
                (0, _) => rng.random_range(j..=n),
                (_, 0) => j,
                (_, 1) => n,
                (1, _) => j + 1 + rng.random_range(0..(n - j).min(40)),
                _ => rng.random_range(j + 1..=n),
            };
            v as i32
        })
        .collect()
}

#[test]
fn arbitrary_vis_end_at_every_registered_shape() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0018);
    let shapes = registered_shapes();
    for round in 0..60 {
        let rows = rng.random_range(1..=2);
        let n = rng.random_range(1..=420);
        let data: Vec<Vec<i32>> = (0..rows).map(|_| arbitrary_row(&mut rng, n)).collect();
        let vis = VisEnd::from_rows(&data).unwrap();
        check(&vis, shapes[round % shapes.len()]);
        let (bq, bk) = SHAPES[round % SHAPES.len()];
        check(&vis, TileShape::new(bq, bk).unwrap());
    }
}

#[test]
fn layouts_at_every_registered_shape() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0019);
    for (i, tile) in registered_shapes().into_iter().enumerate() {
        for round in 0..4 {
            let target = rng.random_range(100..=600);
            let batch =
                common::random_batch(&mut rng, 2, target, [5, 40, 90, 200][(i + round) % 4], 60);
            let vis = VisEnd::from_rows(
                &batch
                    .iter()
                    .map(|r| r.vis_end().to_vec())
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            check(&vis, tile);
        }
    }
}

/// Batches large enough to be built on several threads (128k tokens and more) give each shape the
/// lists it gets alone.
#[test]
fn shapes_built_together_on_threads_equal_each_alone() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0020);
    let rows: Vec<Vec<i32>> = (0..3)
        .map(|r| {
            if r == 0 {
                arbitrary_row(&mut rng, 45_000)
            } else {
                // At most 40000 + 6 * 600 tokens of content, then padding.
                let b = common::random_builder(&mut rng, 40_000, 600);
                b.finish(45_000).unwrap().vis_end().to_vec()
            }
        })
        .collect();
    let vis = VisEnd::from_rows(&rows).unwrap();
    let shapes = registered_shapes();
    let together = BlockMask::build_all(&vis, &shapes).unwrap();
    for (t, m) in shapes.iter().zip(&together) {
        assert_eq!(*m, BlockMask::build(&vis, *t).unwrap(), "{t:?}");
    }
}

/// A causal row has two runs per tile in each direction (FULL, then the diagonal's PARTIAL; a
/// third, PARTIAL, for the ragged last q tile of a row that is not a multiple of it), so the lists
/// grow with tokens, not with tiles squared.
#[test]
fn causal_and_packed_rows_take_a_handful_of_runs_per_tile() {
    for (bq, bk) in [(64, 64), (64, 128), (128, 64), (128, 128), (192, 128)] {
        let tile = TileShape::new(bq, bk).unwrap();
        for (n, per_tile) in [(3 * 4096, 2), (3 * 4096 + 64, 3)] {
            let m = BlockMask::build(&VisEnd::new(n, vec![n as i32; n]).unwrap(), tile).unwrap();
            let runs = |l: ListArrays<'_>| l.runs.len() / 2;
            assert!(
                runs(m.q_major()) <= per_tile * m.q_tiles(),
                "{bq}x{bk} n {n}"
            );
            assert!(
                runs(m.k_major()) <= per_tile * m.k_tiles(),
                "{bq}x{bk} n {n}"
            );
        }
        // Documents of 1000 tokens: at most the document's FULL run, a straddling tile and the
        // diagonal's PARTIAL run per q tile.
        let n = 8000;
        let docs: Vec<i32> = (0..n).map(|j| ((j / 1000 + 1) * 1000) as i32).collect();
        let m = BlockMask::build(&VisEnd::new(n, docs).unwrap(), tile).unwrap();
        assert!(m.q_major().runs.len() / 2 <= 3 * m.q_tiles(), "{bq}x{bk}");
        assert!(m.k_major().runs.len() / 2 <= 3 * m.k_tiles(), "{bq}x{bk}");
    }
}

#[test]
fn random_layouts_match_brute_force() {
    let mut rng = StdRng::seed_from_u64(0xb10c_u64);
    for round in 0..200 {
        let rows = rng.random_range(1..=3);
        let target = rng.random_range(1..=200);
        let max_seg = [2, 5, 17, 40][round % 4];
        let batch = common::random_batch(&mut rng, rows, target, max_seg, 20);
        let vis = VisEnd::from_rows(
            &batch
                .iter()
                .map(|r| r.vis_end().to_vec())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for (bq, bk) in SHAPES {
            check(&vis, TileShape::new(bq, bk).unwrap());
        }
    }
}

#[test]
fn exact_multiples_and_tiny_rows() {
    // Rows whose length is a multiple of the tile (FULL tiles exist) and rows shorter than it.
    for n in [1, 15, 16, 17, 64, 128, 129] {
        let causal = VisEnd::new(n, vec![n as i32; n]).unwrap();
        let padding = VisEnd::new(n, (0..n as i32).collect()).unwrap();
        for (bq, bk) in SHAPES {
            let tile = TileShape::new(bq, bk).unwrap();
            check(&causal, tile);
            check(&padding, tile);
        }
    }
    let causal = VisEnd::new(64, vec![64; 64]).unwrap();
    let mask = BlockMask::build(&causal, TileShape::new(16, 16).unwrap()).unwrap();
    assert_eq!(mask.class(0, 3, 0), TileClass::Full);
    assert_eq!(mask.class(0, 3, 3), TileClass::Partial);
    assert_eq!(mask.class(0, 0, 3), TileClass::Empty);
}

#[test]
fn bad_tile_shapes_are_rejected() {
    for (bq, bk) in [
        (0, 16),
        (16, 0),
        (8, 16),
        (16, 24),
        (272, 16),
        (16, 512),
        (17, 17),
    ] {
        assert_eq!(
            TileShape::new(bq, bk),
            Err(Error::InvalidTileShape {
                block_q: bq,
                block_k: bk
            })
        );
    }
}
