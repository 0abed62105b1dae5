//! Every bad input to the mask rule, batches of rows and tile shapes returns its typed error,
//! naming the offending value and index.

use prefix_attn::mask::rule::validate_row;
use prefix_attn::mask::{BlockMask, TileShape, VisEnd};
use prefix_attn::{AttnShape, Error};

#[test]
fn vis_end_below_its_index_is_rejected() {
    let err = VisEnd::new(4, vec![4, 4, 1, 4]).unwrap_err();
    assert_eq!(
        err,
        Error::VisEndOutOfRange {
            row: 0,
            index: 2,
            value: 1,
            len: 4
        }
    );
}

#[test]
fn vis_end_past_the_row_is_rejected_in_the_right_row() {
    let err = VisEnd::new(3, vec![3, 3, 3, 1, 2, 4]).unwrap_err();
    assert_eq!(
        err,
        Error::VisEndOutOfRange {
            row: 1,
            index: 2,
            value: 4,
            len: 3
        }
    );
    let err = VisEnd::new(2, vec![2, -1]).unwrap_err();
    assert!(matches!(
        err,
        Error::VisEndOutOfRange {
            index: 1,
            value: -1,
            ..
        }
    ));
}

#[test]
fn empty_rows_are_rejected() {
    assert_eq!(
        validate_row(7, &[]).unwrap_err(),
        Error::EmptyRow { row: 7 }
    );
    assert_eq!(
        VisEnd::new(0, vec![0]).unwrap_err(),
        Error::EmptyRow { row: 0 }
    );
    assert!(matches!(VisEnd::new(0, vec![]), Err(Error::NoRows { .. })));
    let none: [Vec<i32>; 0] = [];
    assert!(matches!(
        VisEnd::from_rows(&none),
        Err(Error::NoRows { .. })
    ));
    assert_eq!(
        VisEnd::from_rows(&[vec![1], vec![]]).unwrap_err(),
        Error::EmptyRow { row: 1 }
    );
}

#[test]
fn length_mismatches_are_rejected() {
    assert!(matches!(
        VisEnd::new(3, vec![3, 3, 3, 3]),
        Err(Error::LengthMismatch { got: 4, .. })
    ));
    assert_eq!(
        VisEnd::from_rows(&[vec![2, 2], vec![3, 3, 3]]).unwrap_err(),
        Error::LengthMismatch {
            what: "row length (all rows of a batch share one length)",
            expected: 2,
            got: 3
        }
    );
}

#[test]
fn tile_shapes_must_be_multiples_of_16_up_to_256() {
    for (bq, bk) in [(0, 64), (64, 0), (48, 20), (8, 64), (64, 272), (512, 64)] {
        assert_eq!(
            TileShape::new(bq, bk).unwrap_err(),
            Error::InvalidTileShape {
                block_q: bq,
                block_k: bk
            }
        );
    }
    assert!(TileShape::new(16, 256).is_ok());
}

#[test]
fn attention_shapes_are_validated() {
    let ok = AttnShape {
        rows: 2,
        n: 128,
        q_heads: 32,
        kv_heads: 8,
        head_dim: 128,
    };
    assert!(ok.validate().is_ok());
    assert_eq!(
        AttnShape { kv_heads: 5, ..ok }.validate().unwrap_err(),
        Error::HeadCountMismatch {
            q_heads: 32,
            kv_heads: 5
        }
    );
    assert!(matches!(
        AttnShape { kv_heads: 0, ..ok }.validate(),
        Err(Error::HeadCountMismatch { .. })
    ));
    assert!(matches!(
        AttnShape { n: 0, ..ok }.validate(),
        Err(Error::EmptyRow { .. })
    ));
    assert!(matches!(
        AttnShape {
            rows: 1 << 20,
            n: 1 << 20,
            ..ok
        }
        .validate(),
        Err(Error::IndexOverflow { .. })
    ));
}

#[test]
fn block_mask_of_a_valid_batch_builds() {
    let ve = VisEnd::new(5, vec![5, 5, 2, 5, 5]).unwrap();
    let bm = BlockMask::build(&ve, TileShape::new(16, 16).unwrap()).unwrap();
    // Keys 0, 1, 3, 4 are seen by 5, 4, 2, 1 queries; key 2 is padding.
    assert_eq!(bm.stats().visible_pairs, 12);
    // One ragged tile: never FULL.
    assert_eq!(bm.stats().partial, 1);
    assert_eq!(bm.stats().full, 0);
}
