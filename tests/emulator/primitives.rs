//! Each primitive of the intrinsics layer on the emulator, against its documented semantics
//! (PTX ISA for shfl, ldmatrix, mma, cp.async; IEEE round-to-nearest-even for conversions),
//! through the probe kernels, under all three schedules.

use crate::emu_support;

use emu_support::*;
use prefix_attn::emu::probes::{ProbeConvert, ProbeCpAsync, ProbeLdmatrix, ProbeMma, ProbeShfl};
use prefix_attn::emu::{self, check_schedules, watch, Approx, GuardedBuf, Options};
use prefix_attn::ffi::emu::*;

const SEED: u64 = 0x5eed_0003;

#[test]
fn shuffles_follow_ptx_shfl_sync() {
    let (ctas, threads) = (2u32, 64u32);
    let n = (ctas * threads) as usize;
    let values = GuardedBuf::from_slice(&random_u32(n, 1));
    let mut r = rng(2);
    let src: Vec<i32> = (0..n)
        .map(|_| rand::Rng::random_range(&mut r, -100..100))
        .collect();
    let src_lanes = GuardedBuf::from_slice(&src);
    let out = GuardedBuf::<u32>::filled(n * PA_PROBE_SHFL_CASES as usize, 0xfeed_f00d);
    let params = PaProbeShflParams {
        values: values.as_ptr(),
        src_lanes: src_lanes.as_ptr(),
        out: out.as_mut_ptr(),
    };
    let dims = ProbeShfl::dims(ctas, threads);
    check_schedules(
        ProbeShfl::kernel().unwrap().name(),
        SEED,
        &[watch("out", &out)],
        |s| unsafe { emu::launch(ProbeShfl::kernel().unwrap(), &dims, &params, s) },
    )
    .unwrap();

    let v = values.as_slice();
    let got = out.as_slice();
    for t in 0..n {
        let lane = t % 32;
        let base = t - lane;
        let at = |j: usize| v[base + (j & 31)];
        let mut expect = vec![];
        for m in [1usize, 2, 4, 8, 16, 31, 0, 7] {
            expect.push(at(lane ^ m));
        }
        expect.push(at(lane ^ 1));
        expect.push(at(lane ^ 16));
        expect.push(at(src[t] as u32 as usize));
        expect.push(at((src[t] ^ 5) as u32 as usize));
        expect.push(at(0));
        expect.push(at(lane + 1));
        expect.push(at(31));
        let sum: u32 = (0..32).map(|j| v[base + j] & 0xff).sum();
        expect.push((sum as f32).to_bits());
        let row = &got[t * 16..t * 16 + 16];
        for (k, (&g, &e)) in row.iter().zip(&expect).enumerate() {
            assert_eq!(g, e, "thread {t} case {k}: got {g:#x}, expected {e:#x}");
        }
    }
}

/// PTX ISA, ldmatrix: lanes 8i..8i+7 give the rows of matrix i; lane l receives, per matrix,
/// row l/4 columns 2(l%4), 2(l%4)+1 (with .trans: rows 2(l%4), 2(l%4)+1 of column l/4).
fn ldmatrix_expected(rows: &[u16], row_of_lane: &[i32], t: usize) -> Vec<u32> {
    let lane = t % 32;
    let base = t - lane;
    let elem = |m: usize, r: usize, c: usize| rows[row_of_lane[base + 8 * m + r] as usize * 8 + c];
    let reg = |m: usize, trans: bool| {
        let (g, q) = (lane / 4, lane % 4);
        let (lo, hi) = if trans {
            (elem(m, 2 * q, g), elem(m, 2 * q + 1, g))
        } else {
            (elem(m, g, 2 * q), elem(m, g, 2 * q + 1))
        };
        lo as u32 | (hi as u32) << 16
    };
    let mut e = vec![];
    for trans in [false, true] {
        for count in [1, 2, 4] {
            for m in 0..count {
                e.push(reg(m, trans));
            }
        }
    }
    e
}

#[test]
fn ldmatrix_follows_the_ptx_fragment_layout() {
    let rows: Vec<u16> = random_u32(PA_PROBE_LDMATRIX_ROWS as usize * 8, 3)
        .into_iter()
        .map(|x| x as u16)
        .collect();
    let mut r = rng(4);
    let row_of_lane: Vec<i32> = (0..64)
        .map(|_| rand::Rng::random_range(&mut r, 0..PA_PROBE_LDMATRIX_ROWS as i32))
        .collect();
    let rows_buf = GuardedBuf::from_slice(&rows);
    let lanes_buf = GuardedBuf::from_slice(&row_of_lane);
    let regs = PA_PROBE_LDMATRIX_REGS as usize;
    let out = GuardedBuf::<u32>::filled(64 * regs, 0xdead_0000);
    let params = PaProbeLdmatrixParams {
        rows: rows_buf.as_ptr(),
        row_of_lane: lanes_buf.as_ptr(),
        out: out.as_mut_ptr(),
    };
    let dims = ProbeLdmatrix::dims();
    check_schedules(
        ProbeLdmatrix::kernel().unwrap().name(),
        SEED,
        &[watch("out", &out)],
        |s| unsafe { emu::launch(ProbeLdmatrix::kernel().unwrap(), &dims, &params, s) },
    )
    .unwrap();
    for t in 0..64 {
        let e = ldmatrix_expected(&rows, &row_of_lane, t);
        assert_eq!(
            &out.as_slice()[t * regs..(t + 1) * regs],
            &e[..],
            "thread {t}"
        );
    }
}

fn run_probe_mma(a: &[u16], b: &[u16], c: &[f32], f16: bool) -> Vec<f32> {
    let tiles = c.len() / 128;
    let (ab, bb, cb) = (
        GuardedBuf::from_slice(a),
        GuardedBuf::from_slice(b),
        GuardedBuf::from_slice(c),
    );
    let d = GuardedBuf::<f32>::filled(tiles * 128, f32::NAN);
    let params = PaProbeMmaParams {
        a: ab.as_ptr(),
        b: bb.as_ptr(),
        c: cb.as_ptr(),
        d: d.as_mut_ptr(),
        f16: f16 as u32,
        tiles: tiles as u32,
    };
    let dims = ProbeMma::dims(tiles as u32);
    check_schedules(
        ProbeMma::kernel().unwrap().name(),
        SEED,
        &[watch("d", &d)],
        |s| unsafe { emu::launch(ProbeMma::kernel().unwrap(), &dims, &params, s) },
    )
    .unwrap();
    d.to_vec()
}

/// D = A B + C per tile in f64, A [16][16] (m,k), B given as [8][16] (n,k).
fn mma_reference(a: &[u16], b: &[u16], c: &[f32], f16: bool) -> (Vec<f64>, Vec<f64>) {
    let dec = if f16 { f16_to_f64 } else { bf16_to_f64 };
    let tiles = c.len() / 128;
    let mut d = vec![0.0; tiles * 128];
    let mut mag = vec![0.0; tiles * 128];
    for t in 0..tiles {
        for m in 0..16 {
            for n in 0..8 {
                let mut acc = c[t * 128 + m * 8 + n] as f64;
                let mut s = acc.abs();
                for k in 0..16 {
                    let p = dec(a[t * 256 + m * 16 + k]) * dec(b[t * 128 + n * 16 + k]);
                    acc += p;
                    s += p.abs();
                }
                d[t * 128 + m * 8 + n] = acc;
                mag[t * 128 + m * 8 + n] = s;
            }
        }
    }
    (d, mag)
}

#[test]
fn mma_on_exact_inputs_equals_the_matmul_exactly() {
    for f16 in [false, true] {
        let tiles = 6;
        let (a, b) = if f16 {
            (exact_f16(tiles * 256, 5), exact_f16(tiles * 128, 6))
        } else {
            (exact_bf16(tiles * 256, 5), exact_bf16(tiles * 128, 6))
        };
        let mut r = rng(7);
        let c: Vec<f32> = (0..tiles * 128)
            .map(|_| rand::Rng::random_range(&mut r, -64i32..64) as f32 / 4.0)
            .collect();
        let d = run_probe_mma(&a, &b, &c, f16);
        let (reference, _) = mma_reference(&a, &b, &c, f16);
        for (i, (&g, &e)) in d.iter().zip(&reference).enumerate() {
            assert_eq!(
                g as f64,
                e,
                "f16={f16} tile {} element {}",
                i / 128,
                i % 128
            );
        }
    }
}

#[test]
fn mma_on_general_inputs_is_the_f32_rounding_of_the_exact_sum() {
    for f16 in [false, true] {
        let tiles = 4;
        let a = spread_bf16(tiles * 256, 8, f16);
        let b = spread_bf16(tiles * 128, 9, f16);
        let mut r = rng(10);
        let c: Vec<f32> = (0..tiles * 128)
            .map(|_| rand::Rng::random_range(&mut r, -100.0f32..100.0))
            .collect();
        let d = run_probe_mma(&a, &b, &c, f16);
        let (reference, mag) = mma_reference(&a, &b, &c, f16);
        for i in 0..d.len() {
            // The emulator rounds the (here exact) f64 sum once: half an f32 ulp of the result,
            // plus the f64 sum's own rounding (2^-52 of the magnitude sum), no more.
            let bound = reference[i].abs() * 2f64.powi(-24) + mag[i] * 2f64.powi(-50);
            let err = (d[i] as f64 - reference[i]).abs();
            assert!(
                err <= bound,
                "f16={f16} element {i}: {} vs {} (bound {bound:e})",
                d[i],
                reference[i]
            );
        }
    }
}

#[test]
fn cp_async_completes_each_group_at_its_wait() {
    let src = random_u32(3 * 128 * 4, 11);
    let mut r = rng(12);
    let valid: Vec<u32> = (0..3 * 128)
        .map(|_| (rand::Rng::random_range(&mut r, 0..4) != 0) as u32)
        .collect();
    assert!(valid.contains(&0) && valid.contains(&1));
    let (sb, vb) = (GuardedBuf::from_slice(&src), GuardedBuf::from_slice(&valid));
    let out = GuardedBuf::<u32>::filled(3 * 128 * 4, 0xabad_cafe);
    let params = PaProbeCpAsyncParams {
        src: sb.as_ptr(),
        valid: vb.as_ptr(),
        out: out.as_mut_ptr(),
    };
    let dims = ProbeCpAsync::dims();
    check_schedules(
        ProbeCpAsync::kernel().unwrap().name(),
        SEED,
        &[watch("out", &out)],
        |s| unsafe { emu::launch(ProbeCpAsync::kernel().unwrap(), &dims, &params, s) },
    )
    .unwrap();
    for chunk in 0..3 * 128 {
        for w in 0..4 {
            let e = if valid[chunk] != 0 {
                src[chunk * 4 + w]
            } else {
                0
            };
            assert_eq!(out.as_slice()[chunk * 4 + w], e, "chunk {chunk} word {w}");
        }
    }
}

fn same_float_bits(got: u32, expect: u32, f_bits: u32, man_mask: u32) -> bool {
    // NaNs are compared by NaN-ness only (payloads are not part of the contract).
    let is_nan = |x: u32| (x & f_bits) == f_bits && (x & man_mask) != 0;
    got == expect || (is_nan(got) && is_nan(expect))
}

#[test]
fn conversions_round_to_nearest_even() {
    let input = conversion_inputs(13);
    let n = input.len();
    let bits16: Vec<u16> = random_u32(n, 14).into_iter().map(|x| x as u16).collect();
    let bufs = (
        GuardedBuf::from_slice(&input),
        GuardedBuf::from_slice(&bits16),
        GuardedBuf::<u16>::filled(n, 0xdead),
        GuardedBuf::<u16>::filled(n, 0xdead),
        GuardedBuf::<f32>::filled(n, -7.0),
        GuardedBuf::<f32>::filled(n, -7.0),
        GuardedBuf::<u32>::filled(n, 0xdead_beef),
        GuardedBuf::<u32>::filled(n, 0xdead_beef),
        GuardedBuf::<f32>::filled(n, -7.0),
        GuardedBuf::<f32>::filled(PA_PROBE_ATOMIC_SLOTS as usize, 0.0),
    );
    let params = PaProbeConvertParams {
        in_: bufs.0.as_ptr(),
        bits16: bufs.1.as_ptr(),
        to_bf16: bufs.2.as_mut_ptr(),
        to_f16: bufs.3.as_mut_ptr(),
        bf16_to_float: bufs.4.as_mut_ptr(),
        f16_to_float: bufs.5.as_mut_ptr(),
        pack_bf16: bufs.6.as_mut_ptr(),
        pack_f16: bufs.7.as_mut_ptr(),
        exp2: bufs.8.as_mut_ptr(),
        atomic_sums: bufs.9.as_mut_ptr(),
        count: n as i64,
    };
    let dims = ProbeConvert::dims(n);
    let watches = [
        watch("to_bf16", &bufs.2),
        watch("to_f16", &bufs.3),
        watch("bf16_to_float", &bufs.4),
        watch("f16_to_float", &bufs.5),
        watch("pack_bf16", &bufs.6),
        watch("pack_f16", &bufs.7),
        watch("exp2", &bufs.8),
        watch("atomic_sums", &bufs.9),
    ];
    // exp2_fast exact (correctly rounded): its perturbed modes are tests/emulator/approx.rs's.
    check_schedules(
        ProbeConvert::kernel().unwrap().name(),
        SEED,
        &watches,
        |s| unsafe {
            emu::launch(
                ProbeConvert::kernel().unwrap(),
                &dims,
                &params,
                Options::from(s).with_approx(Approx::Exact),
            )
        },
    )
    .unwrap();

    for i in 0..n {
        let x = input[i];
        let y = input[n - 1 - i];
        let eb = half::bf16::from_f32(x).to_bits();
        let eh = half::f16::from_f32(x).to_bits();
        let gb = bufs.2.as_slice()[i];
        let gh = bufs.3.as_slice()[i];
        assert!(
            same_float_bits(gb as u32, eb as u32, 0x7f80, 0x7f),
            "to_bf16({x:e}) = {gb:#06x}, expected {eb:#06x}"
        );
        assert!(
            same_float_bits(gh as u32, eh as u32, 0x7c00, 0x3ff),
            "to_f16({x:e}) = {gh:#06x}, expected {eh:#06x}"
        );
        let pb = half::bf16::from_f32(x).to_bits() as u32
            | (half::bf16::from_f32(y).to_bits() as u32) << 16;
        let ph = half::f16::from_f32(x).to_bits() as u32
            | (half::f16::from_f32(y).to_bits() as u32) << 16;
        let (gpb, gph) = (bufs.6.as_slice()[i], bufs.7.as_slice()[i]);
        if !(x.is_nan() || y.is_nan()) {
            assert_eq!(gpb, pb, "pack_bf16x2({x:e}, {y:e})");
            assert_eq!(gph, ph, "pack_f16x2({x:e}, {y:e})");
        }
        let h = bits16[i];
        let fb = half::bf16::from_bits(h).to_f32().to_bits();
        let fh = half::f16::from_bits(h).to_f32().to_bits();
        assert!(
            same_float_bits(bufs.4.as_slice()[i].to_bits(), fb, 0x7f80_0000, 0x7f_ffff),
            "bf16 {h:#06x}"
        );
        assert!(
            same_float_bits(bufs.5.as_slice()[i].to_bits(), fh, 0x7f80_0000, 0x7f_ffff),
            "f16 {h:#06x}"
        );
        // exp2_fast in the exact mode: ex2.approx.ftz's PTX table, otherwise the correctly
        // rounded value (a result below the normals flushed to +0).
        let g = bufs.8.as_slice()[i];
        match approx::ex2_rounded(x) {
            None => assert_eq!(approx::ex2_ok(x, g), Ok(None), "exp2({x:e})"),
            Some(c) => {
                let c = if c < f32::MIN_POSITIVE { 0.0 } else { c };
                assert_eq!(g.to_bits(), c.to_bits(), "exp2({x:e}) = {g:e}, want {c:e}");
            }
        }
    }
    for s in 0..PA_PROBE_ATOMIC_SLOTS as usize {
        let e: f32 = (s..n).step_by(16).map(|i| (i % 7) as f32).sum();
        assert_eq!(bufs.9.as_slice()[s], e, "atomic slot {s}");
    }
}
