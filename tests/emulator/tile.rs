//! The sample tensor-core tile kernel (csrc/test_kernels/emu_gemm_tile.cuh: cp.async, ldmatrix plain
//! and .trans, mma, quad-shuffle softmax) on the emulator: identical under all three schedules,
//! and equal to an f64 reference within bounds derived from its arithmetic.

use crate::emu_support;

use emu_support::*;
use prefix_attn::emu::probes::EmuGemmTile;
use prefix_attn::emu::{self, check_schedules, watch, GuardedBuf};
use prefix_attn::ffi::emu::PaEmuGemmTileParams;

/// Stores a logical [rows][cols] matrix either as given or transposed.
fn layout(x: &[u16], transposed: bool) -> Vec<u16> {
    if !transposed {
        return x.to_vec();
    }
    let mut t = vec![0; 64 * 64];
    for r in 0..64 {
        for c in 0..64 {
            t[c * 64 + r] = x[r * 64 + c];
        }
    }
    t
}

fn run(a_kmajor: bool, b_kmajor: bool, seed: u64) {
    // Logical A [m][k] and B^T [n][k] with normal values over 2^-6..2^6 of both signs.
    let a = spread_bf16(64 * 64, seed, false);
    let bt = spread_bf16(64 * 64, seed + 1, false);
    let scale = 0.125f32;
    let ab = GuardedBuf::from_slice(&layout(&a, a_kmajor));
    let bb = GuardedBuf::from_slice(&layout(&bt, b_kmajor));
    let c = GuardedBuf::<f32>::filled(64 * 64, f32::NAN);
    let p = GuardedBuf::<f32>::filled(64 * 64, f32::NAN);
    let params = PaEmuGemmTileParams {
        a: ab.as_ptr(),
        b: bb.as_ptr(),
        c: c.as_mut_ptr(),
        p: p.as_mut_ptr(),
        scale,
        a_kmajor: a_kmajor as u32,
        b_kmajor: b_kmajor as u32,
        _pad0: 0,
    };
    let dims = EmuGemmTile::dims();
    let stats = check_schedules(
        EmuGemmTile::kernel().unwrap().name(),
        seed,
        &[watch("c", &c), watch("p", &p)],
        |s| unsafe { emu::launch(EmuGemmTile::kernel().unwrap(), &dims, &params, s) },
    )
    .unwrap();
    // 4 warps x (4 k-steps x (1 A + 4 B ldmatrix + 8 mma) + 2 x 4 shuffles) collectives.
    assert_eq!(stats[0].collectives, 4 * (4 * 13 + 8));
    assert_eq!(stats[0].barriers, 1);

    let af: Vec<f64> = a.iter().map(|&x| bf16_to_f64(x)).collect();
    let mut bf = vec![0.0; 64 * 64]; // B [k][n]
    for n in 0..64 {
        for k in 0..64 {
            bf[k * 64 + n] = bf16_to_f64(bt[n * 64 + k]);
        }
    }
    let cref = matmul_f64(&af, &bf, 64, 64, 64);
    let abs_a: Vec<f64> = af.iter().map(|x| x.abs()).collect();
    let abs_b: Vec<f64> = bf.iter().map(|x| x.abs()).collect();
    let mag = matmul_f64(&abs_a, &abs_b, 64, 64, 64);
    for i in 0..64 * 64 {
        // Four k-steps, each one mma rounding its exact partial sum to f32 once: 4 roundings of
        // at most half an ulp of a partial sum bounded by the magnitude sum.
        let bound = 4.0 * 2f64.powi(-24) * mag[i];
        let err = (c.as_slice()[i] as f64 - cref[i]).abs();
        assert!(
            err <= bound,
            "a_kmajor={a_kmajor} b_kmajor={b_kmajor} c[{}][{}]: {} vs {} (bound {bound:e})",
            i / 64,
            i % 64,
            c.as_slice()[i],
            cref[i]
        );
    }
    for m in 0..64 {
        let row = &cref[m * 64..(m + 1) * 64];
        let mx = row.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = row
            .iter()
            .map(|x| ((x - mx) * scale as f64).exp())
            .collect();
        let s: f64 = e.iter().sum();
        for (n, en) in e.iter().enumerate() {
            let expect = en / s;
            let got = p.as_slice()[m * 64 + n] as f64;
            // f32 exp2 and a 64-term f32 sum on logits that carry the c error above: 1e-5
            // relative to the row's largest probability covers it with room.
            assert!(
                (got - expect).abs() <= 1e-5,
                "a_kmajor={a_kmajor} b_kmajor={b_kmajor} p[{m}][{n}]: {got} vs {expect}"
            );
        }
    }
}

#[test]
fn gemm_tile_a_rowmajor_b_colmajor() {
    run(false, false, 100);
}

#[test]
fn gemm_tile_a_rowmajor_b_rowmajor_via_trans() {
    run(false, true, 200);
}

#[test]
fn gemm_tile_a_kmajor_via_trans_b_colmajor() {
    run(true, false, 300);
}

#[test]
fn gemm_tile_both_via_trans() {
    run(true, true, 400);
}
