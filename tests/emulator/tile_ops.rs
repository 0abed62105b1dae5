//! The tile layer's operations (csrc/tile/, through csrc/test_kernels/probe_tile.cuh) on the emulator:
//! identical under all three schedules and equal to f64 references — the products within bounds
//! derived from how the emulated mma rounds, everything else bit for bit — for bf16 and f16, with
//! all 64 rows of A loaded and with a ragged row count (zero-fill on load, rows not stored).

use crate::emu_support;

use emu_support::*;
use prefix_attn::emu::probes::ProbeTile;
use prefix_attn::emu::{self, check_schedules, watch, GuardedBuf};
use prefix_attn::ffi::emu::PaProbeTileParams;
use rand::Rng;

const N: usize = 64;
const POISON: u16 = 0x7fff;

/// Values uniform in [-2, 2) rounded to the dtype: 64-term sums of products stay below 256, well
/// inside f16's range when A B^T is rounded to it (to_a, store_scaled).
fn inputs(seed: u64, f16: bool) -> Vec<u16> {
    let mut r = rng(seed);
    (0..N * N)
        .map(|_| {
            let x: f32 = r.random_range(-2.0f32..2.0);
            if f16 {
                half::f16::from_f32(x).to_bits()
            } else {
                half::bf16::from_f32(x).to_bits()
            }
        })
        .collect()
}

fn to_f64(bits: u16, f16: bool) -> f64 {
    if f16 {
        f16_to_f64(bits)
    } else {
        bf16_to_f64(bits)
    }
}

fn round_to(x: f32, f16: bool) -> u16 {
    if f16 {
        half::f16::from_f32(x).to_bits()
    } else {
        half::bf16::from_f32(x).to_bits()
    }
}

/// Each emulated mma.m16n8k16 adds its 16 exact products to the accumulator and rounds once:
/// over 64 = 4 k steps, at most 4 roundings of half an f32 ulp of a partial sum bounded by
/// sum_k |a b|.
fn check_product(what: &str, got: &[f32], want: &[f64], mag: &[f64]) {
    for i in 0..N * N {
        let bound = 4.0 * 2f64.powi(-24) * mag[i];
        let err = (got[i] as f64 - want[i]).abs();
        assert!(
            err <= bound,
            "{what}[{}][{}]: {} vs {} (bound {bound:e})",
            i / N,
            i % N,
            got[i],
            want[i]
        );
    }
}

fn transpose(x: &[f64]) -> Vec<f64> {
    let mut t = vec![0.0; N * N];
    for r in 0..N {
        for c in 0..N {
            t[c * N + r] = x[r * N + c];
        }
    }
    t
}

fn run(f16: bool, rows_valid: usize, seed: u64) {
    let a = inputs(seed, f16);
    let b = inputs(seed + 1, f16);
    let (ga, gb) = (GuardedBuf::from_slice(&a), GuardedBuf::from_slice(&b));
    let out = || GuardedBuf::<f32>::filled(N * N, f32::NAN);
    let (abt, ab, pb, atb) = (out(), out(), out(), out());
    let row_max = GuardedBuf::<f32>::filled(N, f32::NAN);
    let scaled = GuardedBuf::<u16>::filled(N * N, POISON);
    let params = PaProbeTileParams {
        a: ga.as_ptr(),
        b: gb.as_ptr(),
        abt: abt.as_mut_ptr(),
        ab: ab.as_mut_ptr(),
        pb: pb.as_mut_ptr(),
        atb: atb.as_mut_ptr(),
        row_max: row_max.as_mut_ptr(),
        scaled: scaled.as_mut_ptr(),
        rows_valid: rows_valid as i32,
        _pad0: 0,
    };
    let kernel = ProbeTile::kernel(f16).unwrap();
    let dims = ProbeTile::dims().unwrap();
    check_schedules(
        kernel.name(),
        seed,
        &[
            watch("abt", &abt),
            watch("ab", &ab),
            watch("pb", &pb),
            watch("atb", &atb),
            watch("row_max", &row_max),
            watch("scaled", &scaled),
        ],
        |s| unsafe { emu::launch(kernel, &dims, &params, s) },
    )
    .unwrap();

    // A as the loader leaves it (rows past rows_valid zero), B, and B^T's row-major [n][k].
    let af: Vec<f64> = (0..N * N)
        .map(|i| {
            if i / N < rows_valid {
                to_f64(a[i], f16)
            } else {
                0.0
            }
        })
        .collect();
    let bf: Vec<f64> = b.iter().map(|&x| to_f64(x, f16)).collect();
    let abs = |x: &[f64]| x.iter().map(|v| v.abs()).collect::<Vec<f64>>();
    let bt = transpose(&bf);
    let at = transpose(&af);

    check_product(
        "A B^T",
        abt.as_slice(),
        &matmul_f64(&af, &bt, N, N, N),
        &matmul_f64(&abs(&af), &abs(&bt), N, N, N),
    );
    check_product(
        "A B",
        ab.as_slice(),
        &matmul_f64(&af, &bf, N, N, N),
        &matmul_f64(&abs(&af), &abs(&bf), N, N, N),
    );
    check_product(
        "A^T B",
        atb.as_slice(),
        &matmul_f64(&at, &bf, N, N, N),
        &matmul_f64(&abs(&at), &abs(&bf), N, N, N),
    );
    // to_a rounds the kernel's own A B^T to the dtype, exactly as `round_to`.
    let p: Vec<f64> = abt
        .as_slice()
        .iter()
        .map(|&x| to_f64(round_to(x, f16), f16))
        .collect();
    check_product(
        "round(A B^T) B",
        pb.as_slice(),
        &matmul_f64(&p, &bf, N, N, N),
        &matmul_f64(&abs(&p), &abs(&bf), N, N, N),
    );
    for r in 0..N {
        let row = &abt.as_slice()[r * N..(r + 1) * N];
        let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(
            row_max.as_slice()[r].to_bits(),
            mx.to_bits(),
            "row_max[{r}]"
        );
        let scale = 1.0f32 / (r + 1) as f32;
        for (c, &x) in row.iter().enumerate() {
            let got = scaled.as_slice()[r * N + c];
            let want = if r < rows_valid {
                round_to(x * scale, f16)
            } else {
                POISON
            };
            assert_eq!(got, want, "scaled[{r}][{c}] (rows_valid {rows_valid})");
        }
    }
}

#[test]
fn tile_ops_bf16_all_rows() {
    run(false, N, 11);
}

#[test]
fn tile_ops_f16_all_rows() {
    run(true, N, 12);
}

#[test]
fn tile_ops_zero_fill_and_row_limit() {
    run(false, 37, 13);
    run(true, 1, 14);
}
