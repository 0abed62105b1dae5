//! Block lists against brute force. Random batches built with the row builders (packed documents,
//! prefix + k samples, trees, padding, lengths that are not multiples of the tile) are classified
//! per (q tile, k tile) by looking at every pair of the padded tile rectangle, and compared with
//! everything `BlockMask` exposes: `class`, both CSR lists, the stats and the launch order.

mod common;

use prefix_attn::mask::block::decode_entry;
use prefix_attn::mask::{visible, BlockMask, TileClass, TileShape, VisEnd};
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

fn check(vis: &VisEnd, tile: TileShape) {
    let mask = BlockMask::build(vis, tile).unwrap();
    let (n, rows) = (vis.n(), vis.rows());
    let (qts, kts) = (n.div_ceil(tile.block_q()), n.div_ceil(tile.block_k()));
    assert_eq!((mask.n(), mask.rows(), mask.tile()), (n, rows, tile));
    assert_eq!((mask.q_tiles(), mask.k_tiles()), (qts, kts));
    assert_eq!(mask.q_offsets().len(), rows * qts + 1);
    assert_eq!(mask.k_offsets().len(), rows * kts + 1);
    assert_eq!(mask.q_entries().len(), mask.k_entries().len());

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
        }
    }
    // The raw CSR arrays decode to the same lists (the accessors are not the only view).
    for s in 0..rows * qts {
        let raw: Vec<_> = mask.q_entries()
            [mask.q_offsets()[s] as usize..mask.q_offsets()[s + 1] as usize]
            .iter()
            .map(|&e| decode_entry(e))
            .collect();
        assert_eq!(raw, mask.q_list(s / qts, s % qts).collect::<Vec<_>>());
    }

    let stats = mask.stats();
    assert_eq!(stats.visible_pairs, pairs);
    assert_eq!(stats.visible_pairs, vis.visible_pairs());
    assert_eq!(
        (stats.full, stats.partial, stats.empty),
        (full, partial, empty)
    );
    assert_eq!(stats.total(), (rows * qts * kts) as u64);
    assert_eq!(stats.non_empty(), mask.q_entries().len() as u64);

    // Launch order: a permutation of the (row, q tile) slots by non-increasing list length, ties
    // in slot order.
    let order = mask.heaviest_first();
    let mut seen = vec![false; rows * qts];
    for &s in order {
        assert!(
            !std::mem::replace(&mut seen[s as usize], true),
            "slot {s} twice"
        );
    }
    assert!(seen.iter().all(|&b| b), "not a permutation");
    let len = |s: i32| mask.q_list(s as usize / qts, s as usize % qts).count();
    for w in order.windows(2) {
        assert!(
            len(w[0]) > len(w[1]) || (len(w[0]) == len(w[1]) && w[0] < w[1]),
            "order {w:?}"
        );
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
