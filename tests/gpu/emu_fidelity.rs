//! Fidelity of the emulator against a real GPU: the probe kernels (and the sample tile kernel)
//! run on device 0 and on the emulator from the same inputs, and their outputs are compared.
//!
//! - Data movement (shfl, ldmatrix, cp.async) and conversions (to_bf16, to_f16, pack, to_float):
//!   bit for bit (NaN compared by NaN-ness: payloads are not part of the contract).
//! - mma on exactly representable inputs (k/8 values, see tests/support/emu): bit for bit, since every
//!   product and partial sum is exact in f32 on both sides.
//! - mma on general inputs, within a derived bound. With S = sum_k |a_k b_k| + |c|: the emulator
//!   rounds the (exact) f64 sum once, |d_emu - d| <= 2^-24 |d|. The tensor core adds 16
//!   exact products and c with at most 16 additions, each with a relative error of at most one
//!   f32 ulp (2^-23, even if it truncates instead of rounding) of a partial sum bounded by S, and
//!   one final rounding: |d_gpu - d| <= 16 * 2^-23 S + 2^-23 |d|. Since |d| <= S,
//!   |d_gpu - d_emu| <= 18 * 2^-23 S, the bound used.
//! - exp2_fast and log2_fast (ex2.approx.ftz.f32 and lg2.approx.ftz.f32 on the device; the
//!   emulator runs the probes with its exact, correctly rounded model): the device within the PTX
//!   ISA's documented error of the correctly rounded / exact value and its special-value tables
//!   (tests/support/emu/approx.rs: ex2 at most 2 ulp from the correctly rounded result; lg2 at
//!   most 2^-22 max(1, |log2 x|)), which is the latitude the emulator's perturbed modes use. The
//!   largest errors seen are printed.
//! - The tile kernel's softmax p: within a bound derived from the c difference above and the
//!   probe's arithmetic (see `p_bound`).
//!
//! - The Hopper probes (compute capability 9.0 only; skipped with the reason printed elsewhere):
//!   mbarrier / named-barrier semantics, TMA boxes (device-encoded tensor maps vs the emulator's
//!   encoding) bit for bit; wgmma bit for bit on exactly representable inputs and otherwise
//!   within the bound derived at `wgmma_bound`; the TMA + wgmma pipeline bit for bit on exact
//!   inputs.
//!
//! Reported as ignored, with the reason, without a device or without nvcc at build time
//! (tests/support/device_harness.rs).

use crate::emu_support;

use libtest_mimic::Trial;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DeviceRepr};
use emu_support::*;
use prefix_attn::cuda::Gpu;
use prefix_attn::emu::probes::*;
use prefix_attn::emu::{self, Approx, GuardedBuf, Options, Schedule};
use prefix_attn::ffi::emu::*;
use prefix_attn::launch::LaunchDims;
use prefix_attn::registry::{KernelParams, KernelRef};

struct Device {
    gpu: Gpu,
    stream: Arc<CudaStream>,
}

/// This module's trials (tests/gpu/main.rs runs them).
pub fn trials() -> Vec<Trial> {
    let mut trials = device_tests![probes_agree_with_the_gpu];
    trials.extend(hopper_tests![hopper_probes_agree_with_the_gpu]);
    trials.extend(host_tests![
        p_bound_covers_ex2_moved_both_ways_on_the_emulator
    ]);
    trials
}

/// The test-only kernels (csrc/test_registry.cuh) as nvcc built them: a fatbin apart from the one
/// the crate embeds, written by build.rs (an empty file in a build without nvcc, where no device
/// test gets this far).
const TEST_FATBIN: &[u8] = include_bytes!(env!("PA_TEST_FATBIN"));

impl Device {
    fn new(gpu: Gpu) -> Device {
        let stream = gpu.default_stream();
        Device { gpu, stream }
    }
    fn up<T: DeviceRepr>(&self, data: &[T]) -> CudaSlice<T> {
        self.stream.clone_htod(data).expect("upload")
    }
    fn ptr<T>(&self, s: &CudaSlice<T>) -> u64 {
        s.device_ptr(&self.stream).0
    }
    fn down<T: DeviceRepr + Default + Clone>(&self, s: &CudaSlice<T>) -> Vec<T> {
        self.stream.clone_dtoh(s).expect("download")
    }
    fn run<P: KernelParams + DeviceRepr>(
        &self,
        kernel: KernelRef<P>,
        dims: &LaunchDims,
        params: &P,
    ) {
        let k = self
            .gpu
            .load_test(TEST_FATBIN, kernel)
            .expect("kernel in the test fatbin");
        // SAFETY: params hold device pointers of live CudaSlices covering what the kernel touches.
        unsafe { prefix_attn::cuda::launch(&k, &self.stream, dims, params) }.expect("launch");
        self.stream.synchronize().expect("synchronize");
    }
}

/// The emulator's run of a probe, with exp2_fast / log2_fast correctly rounded: the device's
/// approximate results are held against the documented error around them.
fn emulate<P: KernelParams>(kernel: KernelRef<P>, dims: &LaunchDims, params: &P) {
    let options = Options::from(Schedule::Ascending).with_approx(Approx::Exact);
    // SAFETY: the callers' params point into GuardedBufs covering what the kernel touches.
    unsafe { emu::launch(kernel, dims, params, options) }.expect("emulated launch");
}

fn assert_bits_equal(what: &str, gpu: &[u32], emu: &[u32]) {
    assert_eq!(gpu.len(), emu.len());
    for (i, (g, e)) in gpu.iter().zip(emu).enumerate() {
        assert_eq!(g, e, "{what}[{i}]: gpu {g:#010x}, emulator {e:#010x}");
    }
}

fn shfl(dev: &Device) {
    let n = 128;
    let values = random_u32(n, 31);
    let mut r = rng(32);
    let src: Vec<i32> = (0..n)
        .map(|_| rand::Rng::random_range(&mut r, -100..100))
        .collect();
    let out_n = n * PA_PROBE_SHFL_CASES as usize;
    let dims = ProbeShfl::dims(2, 64);

    let (dv, ds, dout) = (dev.up(&values), dev.up(&src), dev.up(&vec![0u32; out_n]));
    let p = PaProbeShflParams {
        values: dev.ptr(&dv) as *const u32,
        src_lanes: dev.ptr(&ds) as *const i32,
        out: dev.ptr(&dout) as *mut u32,
    };
    dev.run(ProbeShfl::kernel().unwrap(), &dims, &p);

    let (hv, hs, hout) = (
        GuardedBuf::from_slice(&values),
        GuardedBuf::from_slice(&src),
        GuardedBuf::<u32>::filled(out_n, 0),
    );
    let q = PaProbeShflParams {
        values: hv.as_ptr(),
        src_lanes: hs.as_ptr(),
        out: hout.as_mut_ptr(),
    };
    emulate(ProbeShfl::kernel().unwrap(), &dims, &q);
    assert_bits_equal("probe_shfl out", &dev.down(&dout), hout.as_slice());
}

fn ldmatrix(dev: &Device) {
    let rows: Vec<u16> = random_u32(PA_PROBE_LDMATRIX_ROWS as usize * 8, 33)
        .into_iter()
        .map(|x| x as u16)
        .collect();
    let mut r = rng(34);
    let lanes: Vec<i32> = (0..64)
        .map(|_| rand::Rng::random_range(&mut r, 0..PA_PROBE_LDMATRIX_ROWS as i32))
        .collect();
    let out_n = 64 * PA_PROBE_LDMATRIX_REGS as usize;
    let dims = ProbeLdmatrix::dims();

    let (dr, dl, dout) = (dev.up(&rows), dev.up(&lanes), dev.up(&vec![0u32; out_n]));
    let p = PaProbeLdmatrixParams {
        rows: dev.ptr(&dr) as *const u16,
        row_of_lane: dev.ptr(&dl) as *const i32,
        out: dev.ptr(&dout) as *mut u32,
    };
    dev.run(ProbeLdmatrix::kernel().unwrap(), &dims, &p);

    let (hr, hl, hout) = (
        GuardedBuf::from_slice(&rows),
        GuardedBuf::from_slice(&lanes),
        GuardedBuf::<u32>::filled(out_n, 0),
    );
    let q = PaProbeLdmatrixParams {
        rows: hr.as_ptr(),
        row_of_lane: hl.as_ptr(),
        out: hout.as_mut_ptr(),
    };
    emulate(ProbeLdmatrix::kernel().unwrap(), &dims, &q);
    assert_bits_equal("probe_ldmatrix out", &dev.down(&dout), hout.as_slice());
}

fn cp_async(dev: &Device) {
    let src = random_u32(3 * 128 * 4, 35);
    let mut r = rng(36);
    let valid: Vec<u32> = (0..3 * 128)
        .map(|_| (rand::Rng::random_range(&mut r, 0..4) != 0) as u32)
        .collect();
    let dims = ProbeCpAsync::dims();
    let (ds, dvd, dout) = (dev.up(&src), dev.up(&valid), dev.up(&vec![7u32; src.len()]));
    let p = PaProbeCpAsyncParams {
        src: dev.ptr(&ds) as *const u32,
        valid: dev.ptr(&dvd) as *const u32,
        out: dev.ptr(&dout) as *mut u32,
    };
    dev.run(ProbeCpAsync::kernel().unwrap(), &dims, &p);
    let (hs, hvd, hout) = (
        GuardedBuf::from_slice(&src),
        GuardedBuf::from_slice(&valid),
        GuardedBuf::<u32>::filled(src.len(), 7),
    );
    let q = PaProbeCpAsyncParams {
        src: hs.as_ptr(),
        valid: hvd.as_ptr(),
        out: hout.as_mut_ptr(),
    };
    emulate(ProbeCpAsync::kernel().unwrap(), &dims, &q);
    assert_bits_equal("probe_cp_async out", &dev.down(&dout), hout.as_slice());
}

fn mma(dev: &Device, f16: bool, exact: bool) {
    let tiles = 8usize;
    let (a, b) = match (exact, f16) {
        (true, true) => (exact_f16(tiles * 256, 37), exact_f16(tiles * 128, 38)),
        (true, false) => (exact_bf16(tiles * 256, 37), exact_bf16(tiles * 128, 38)),
        (false, _) => (
            spread_bf16(tiles * 256, 37, f16),
            spread_bf16(tiles * 128, 38, f16),
        ),
    };
    let mut r = rng(39);
    let c: Vec<f32> = (0..tiles * 128)
        .map(|_| rand::Rng::random_range(&mut r, -64i32..64) as f32 / 4.0)
        .collect();
    let dims = ProbeMma::dims(tiles as u32);
    let (da, db, dc, dd) = (
        dev.up(&a),
        dev.up(&b),
        dev.up(&c),
        dev.up(&vec![f32::NAN; c.len()]),
    );
    let p = PaProbeMmaParams {
        a: dev.ptr(&da) as *const u16,
        b: dev.ptr(&db) as *const u16,
        c: dev.ptr(&dc) as *const f32,
        d: dev.ptr(&dd) as *mut f32,
        f16: f16 as u32,
        tiles: tiles as u32,
    };
    dev.run(ProbeMma::kernel().unwrap(), &dims, &p);
    let (ha, hb, hc, hd) = (
        GuardedBuf::from_slice(&a),
        GuardedBuf::from_slice(&b),
        GuardedBuf::from_slice(&c),
        GuardedBuf::<f32>::filled(c.len(), f32::NAN),
    );
    let q = PaProbeMmaParams {
        a: ha.as_ptr(),
        b: hb.as_ptr(),
        c: hc.as_ptr(),
        d: hd.as_mut_ptr(),
        f16: f16 as u32,
        tiles: tiles as u32,
    };
    emulate(ProbeMma::kernel().unwrap(), &dims, &q);
    let gpu = dev.down(&dd);
    let dec = if f16 { f16_to_f64 } else { bf16_to_f64 };
    for t in 0..tiles {
        for m in 0..16 {
            for n in 0..8 {
                let i = t * 128 + m * 8 + n;
                let s: f64 = (0..16)
                    .map(|k| (dec(a[t * 256 + m * 16 + k]) * dec(b[t * 128 + n * 16 + k])).abs())
                    .sum::<f64>()
                    + (c[i] as f64).abs();
                let (g, e) = (gpu[i], hd.as_slice()[i]);
                if exact {
                    assert_eq!(
                        g.to_bits(),
                        e.to_bits(),
                        "f16={f16} exact tile {t} d[{m}][{n}]: gpu {g}, emulator {e}"
                    );
                } else {
                    let bound = 18.0 * 2f64.powi(-23) * s;
                    assert!(
                        ((g - e) as f64).abs() <= bound,
                        "f16={f16} tile {t} d[{m}][{n}]: gpu {g}, emulator {e}, bound {bound:e}"
                    );
                }
            }
        }
    }
}

fn convert(dev: &Device) {
    let input = conversion_inputs(40);
    let n = input.len();
    let bits: Vec<u16> = random_u32(n, 41).into_iter().map(|x| x as u16).collect();
    let dims = ProbeConvert::dims(n);
    let d_in = dev.up(&input);
    let d_bits = dev.up(&bits);
    let d16 = [dev.up(&vec![0u16; n]), dev.up(&vec![0u16; n])];
    let df = [
        dev.up(&vec![0f32; n]),
        dev.up(&vec![0f32; n]),
        dev.up(&vec![0f32; n]),
    ];
    let dp = [dev.up(&vec![0u32; n]), dev.up(&vec![0u32; n])];
    let dsum = dev.up(&vec![0f32; PA_PROBE_ATOMIC_SLOTS as usize]);
    let p = PaProbeConvertParams {
        in_: dev.ptr(&d_in) as *const f32,
        bits16: dev.ptr(&d_bits) as *const u16,
        to_bf16: dev.ptr(&d16[0]) as *mut u16,
        to_f16: dev.ptr(&d16[1]) as *mut u16,
        bf16_to_float: dev.ptr(&df[0]) as *mut f32,
        f16_to_float: dev.ptr(&df[1]) as *mut f32,
        pack_bf16: dev.ptr(&dp[0]) as *mut u32,
        pack_f16: dev.ptr(&dp[1]) as *mut u32,
        exp2: dev.ptr(&df[2]) as *mut f32,
        atomic_sums: dev.ptr(&dsum) as *mut f32,
        count: n as i64,
    };
    dev.run(ProbeConvert::kernel().unwrap(), &dims, &p);

    let h_in = GuardedBuf::from_slice(&input);
    let h_bits = GuardedBuf::from_slice(&bits);
    let h16 = [
        GuardedBuf::<u16>::filled(n, 0),
        GuardedBuf::<u16>::filled(n, 0),
    ];
    let hf = [
        GuardedBuf::<f32>::filled(n, 0.0),
        GuardedBuf::<f32>::filled(n, 0.0),
        GuardedBuf::<f32>::filled(n, 0.0),
    ];
    let hp = [
        GuardedBuf::<u32>::filled(n, 0),
        GuardedBuf::<u32>::filled(n, 0),
    ];
    let hsum = GuardedBuf::<f32>::filled(PA_PROBE_ATOMIC_SLOTS as usize, 0.0);
    let q = PaProbeConvertParams {
        in_: h_in.as_ptr(),
        bits16: h_bits.as_ptr(),
        to_bf16: h16[0].as_mut_ptr(),
        to_f16: h16[1].as_mut_ptr(),
        bf16_to_float: hf[0].as_mut_ptr(),
        f16_to_float: hf[1].as_mut_ptr(),
        pack_bf16: hp[0].as_mut_ptr(),
        pack_f16: hp[1].as_mut_ptr(),
        exp2: hf[2].as_mut_ptr(),
        atomic_sums: hsum.as_mut_ptr(),
        count: n as i64,
    };
    emulate(ProbeConvert::kernel().unwrap(), &dims, &q);

    let nan16 = |x: u16, exp: u16, man: u16| x & exp == exp && x & man != 0;
    for (k, (exp, man)) in [(0x7f80u16, 0x7fu16), (0x7c00, 0x3ff)]
        .into_iter()
        .enumerate()
    {
        let g = dev.down(&d16[k]);
        for i in 0..n {
            let e = h16[k].as_slice()[i];
            assert!(
                g[i] == e || (nan16(g[i], exp, man) && nan16(e, exp, man)),
                "conversion {k} of {:e}: gpu {:#06x}, emulator {e:#06x}",
                input[i],
                g[i]
            );
        }
    }
    for k in 0..2 {
        let g = dev.down(&dp[k]);
        for i in 0..n {
            if !(input[i].is_nan() || input[n - 1 - i].is_nan()) {
                assert_eq!(g[i], hp[k].as_slice()[i], "pack {k} element {i}");
            }
        }
        let g = dev.down(&df[k]);
        for i in 0..n {
            let e = hf[k].as_slice()[i];
            assert!(
                g[i].to_bits() == e.to_bits() || (g[i].is_nan() && e.is_nan()),
                "to_float {k} of {:#06x}: gpu {}, emulator {e}",
                bits[i],
                g[i]
            );
        }
    }
    let g = dev.down(&df[2]);
    for i in 0..n {
        approx::ex2_ok(input[i], g[i]).unwrap_or_else(|m| panic!("gpu: {m}"));
        approx::ex2_ok(input[i], hf[2].as_slice()[i]).unwrap_or_else(|m| panic!("emulator: {m}"));
    }
    assert_eq!(dev.down(&dsum), hsum.to_vec(), "atomic sums");
}

/// exp2_fast and log2_fast over inputs that reach their special cases and whole useful ranges:
/// the device within the documented error (which is what the emulator's perturbed model uses),
/// the emulator's exact model correctly rounded.
fn approx_math(dev: &Device) {
    let input = approx::approx_inputs(44);
    let n = input.len();
    let dims = ProbeLog2::dims(n);
    let (d_in, d_out) = (dev.up(&input), dev.up(&vec![0f32; n]));
    let p = PaProbeLog2Params {
        in_: dev.ptr(&d_in) as *const f32,
        out: dev.ptr(&d_out) as *mut f32,
        count: n as i64,
    };
    dev.run(ProbeLog2::kernel().unwrap(), &dims, &p);
    let (h_in, h_out) = (
        GuardedBuf::from_slice(&input),
        GuardedBuf::<f32>::filled(n, 0.0),
    );
    let q = PaProbeLog2Params {
        in_: h_in.as_ptr(),
        out: h_out.as_mut_ptr(),
        count: n as i64,
    };
    emulate(ProbeLog2::kernel().unwrap(), &dims, &q);
    let g = dev.down(&d_out);
    let mut worst_lg2 = 0.0f64;
    for (i, &x) in input.iter().enumerate() {
        let f = approx::lg2_ok(x, g[i]).unwrap_or_else(|m| panic!("gpu: {m}"));
        worst_lg2 = worst_lg2.max(f.unwrap_or(0.0));
        let e = h_out.as_slice()[i];
        if x.is_normal() && x > 0.0 {
            assert_eq!(e, (x as f64).log2() as f32, "emulator log2({x:e})");
        }
    }

    // exp2_fast through probe_convert, on the same inputs (only its exp2 output is checked).
    let dims = ProbeConvert::dims(n);
    let bits = vec![0u16; n];
    let d_bits = dev.up(&bits);
    let scratch: Vec<_> = (0..6).map(|_| dev.up(&vec![0u32; n])).collect();
    let (d_exp2, d_sum) = (
        dev.up(&vec![0f32; n]),
        dev.up(&vec![0f32; PA_PROBE_ATOMIC_SLOTS as usize]),
    );
    let p = PaProbeConvertParams {
        in_: dev.ptr(&d_in) as *const f32,
        bits16: dev.ptr(&d_bits) as *const u16,
        to_bf16: dev.ptr(&scratch[0]) as *mut u16,
        to_f16: dev.ptr(&scratch[1]) as *mut u16,
        bf16_to_float: dev.ptr(&scratch[2]) as *mut f32,
        f16_to_float: dev.ptr(&scratch[3]) as *mut f32,
        pack_bf16: dev.ptr(&scratch[4]) as *mut u32,
        pack_f16: dev.ptr(&scratch[5]) as *mut u32,
        exp2: dev.ptr(&d_exp2) as *mut f32,
        atomic_sums: dev.ptr(&d_sum) as *mut f32,
        count: n as i64,
    };
    dev.run(ProbeConvert::kernel().unwrap(), &dims, &p);
    let mut worst_ex2 = 0u32;
    for (x, y) in input.iter().zip(dev.down(&d_exp2)) {
        let k = approx::ex2_ok(*x, y).unwrap_or_else(|m| panic!("gpu: {m}"));
        worst_ex2 = worst_ex2.max(k.unwrap_or(0));
    }
    eprintln!(
        "ex2.approx.ftz: at most {worst_ex2} floats from the correctly rounded result (PTX: 2); \
         lg2.approx.ftz: at most {worst_lg2:.3} of the documented error, over {n} inputs"
    );
}

/// Bound on |p_gpu - p_emu| for one softmax output of the tile kernel (emu_gemm_tile.cu), whose
/// row computes e_n = ex2((c_n - max) * k2) with k2 = fl(scale * log2 e), sums the 16 e of a
/// lane (8 pair adds, each pair added to the running sum: at most 8 roundings on a term) and
/// the quad (2 adds), then p_n = e_n * fl(1 / sum). Both sides run this same f32 arithmetic on
/// their own c; per side, relative to the exact softmax of its c, ln p_n moves by at most:
/// ex2's error (5u on the device: 2 ulp from correctly rounded plus its u; u for the emulator's
/// correctly rounded model) on e_n and, weighted, on the sum; the argument's two roundings,
/// 2u |x_n| ln 2, and on the sum 2u ln 2 times the weighted mean |x| (at most log2 64 = 6, with
/// x in log2 units); 10u for the sum's adds and 2u for 1/sum and the product. Between the two
/// exact softmaxes, ln p_n moves by at most 2 * scale * max_j |c_gpu,j - c_emu,j| (the c bound
/// of the row). Plus 2^-124 absolute for ex2 results one side flushes (.ftz) and the other not.
fn p_bound(p_emu: f64, x: f64, c_diff_max: f64, scale: f64) -> f64 {
    let u = 2f64.powi(-24);
    let ln2 = std::f64::consts::LN_2;
    let side = |ex2: f64| 2.0 * ex2 + 2.0 * u * ln2 * (x.abs() + 6.0) + 12.0 * u;
    let r = 2.0 * scale * c_diff_max + side(5.0 * u) + side(u);
    p_emu * (r * (1.0 + 1.0 / 1024.0)).exp_m1() + 2f64.powi(-124)
}

/// The sample tile kernel: c after four mma k-steps within 4x the per-mma bound (S summed over
/// all 64 k), p within [`p_bound`] of the emulator's (exact exp2) result.
fn gemm_tile(dev: &Device) {
    let a = spread_bf16(64 * 64, 42, false);
    let b = spread_bf16(64 * 64, 43, false);
    let dims = EmuGemmTile::dims();
    for (a_kmajor, b_kmajor) in [(0u32, 0u32), (1, 1)] {
        let (da, db) = (dev.up(&a), dev.up(&b));
        let (dc, dpr) = (dev.up(&vec![f32::NAN; 4096]), dev.up(&vec![f32::NAN; 4096]));
        let p = PaEmuGemmTileParams {
            a: dev.ptr(&da) as *const u16,
            b: dev.ptr(&db) as *const u16,
            c: dev.ptr(&dc) as *mut f32,
            p: dev.ptr(&dpr) as *mut f32,
            scale: 0.125,
            a_kmajor,
            b_kmajor,
            _pad0: 0,
        };
        dev.run(EmuGemmTile::kernel().unwrap(), &dims, &p);
        let (ha, hb) = (GuardedBuf::from_slice(&a), GuardedBuf::from_slice(&b));
        let (hc, hp) = (
            GuardedBuf::<f32>::filled(4096, f32::NAN),
            GuardedBuf::<f32>::filled(4096, f32::NAN),
        );
        let q = PaEmuGemmTileParams {
            a: ha.as_ptr(),
            b: hb.as_ptr(),
            c: hc.as_mut_ptr(),
            p: hp.as_mut_ptr(),
            ..p
        };
        emulate(EmuGemmTile::kernel().unwrap(), &dims, &q);
        let (gc, gp) = (dev.down(&dc), dev.down(&dpr));
        // |A| |B| with the operands read in their stored layouts.
        let at = |m: usize, k: usize| {
            bf16_to_f64(if a_kmajor == 1 {
                a[k * 64 + m]
            } else {
                a[m * 64 + k]
            })
            .abs()
        };
        let bt = |k: usize, n: usize| {
            bf16_to_f64(if b_kmajor == 1 {
                b[k * 64 + n]
            } else {
                b[n * 64 + k]
            })
            .abs()
        };
        let k2 = (0.125f32 * std::f32::consts::LOG2_E) as f64;
        let mut worst_p = 0.0f64;
        for m in 0..64 {
            let mut c_bound = [0.0f64; 64];
            for n in 0..64 {
                let s: f64 = (0..64).map(|k| at(m, k) * bt(k, n)).sum();
                let bound = 4.0 * 18.0 * 2f64.powi(-23) * s;
                c_bound[n] = bound;
                let (g, e) = (gc[m * 64 + n], hc.as_slice()[m * 64 + n]);
                assert!(((g - e) as f64).abs() <= bound, "layouts ({a_kmajor},{b_kmajor}) c[{m}][{n}]: gpu {g}, emulator {e}, bound {bound:e}");
            }
            let c_diff_max = c_bound.iter().cloned().fold(0.0, f64::max);
            let row = &hc.as_slice()[m * 64..(m + 1) * 64];
            let mx = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            for n in 0..64 {
                let (g, e) = (gp[m * 64 + n] as f64, hp.as_slice()[m * 64 + n] as f64);
                let x = (row[n] as f64 - mx) * k2;
                let bound = p_bound(e, x, c_diff_max, 0.125);
                assert!(
                    (g - e).abs() <= bound,
                    "layouts ({a_kmajor},{b_kmajor}) p[{m}][{n}]: gpu {g}, emulator {e}, bound {bound:e}"
                );
                worst_p = worst_p.max((g - e).abs() / bound);
            }
        }
        eprintln!("layouts ({a_kmajor},{b_kmajor}): worst p difference {worst_p:.3} of its bound");
    }
}

/// The tile layer's operations (probe_tile) on the device, each output checked against what the
/// device itself was given: every product against its exact (f64) value within the tensor core's
/// bound — per mma |d - exact| <= 16 * 2^-23 S + 2^-23 |d| <= 17 * 2^-23 S (see the top of this
/// file), four k steps over 64 — where round(A B^T) B takes the device's own A B^T; row_max and the
/// scaled, rounded store exactly (a max, one f32 multiply and one rounding are exact operations);
/// rows past rows_valid zero-filled on load and never stored. (The emulator meets the same
/// references within its own, tighter bound: tests/emulator/tile_ops.rs.)
fn tile_ops(dev: &Device, f16: bool) {
    let n = 64usize;
    let mut r = rng(if f16 { 52 } else { 51 });
    let mut gen = || -> Vec<u16> {
        (0..n * n)
            .map(|_| {
                let x: f32 = rand::Rng::random_range(&mut r, -2.0f32..2.0);
                if f16 {
                    half::f16::from_f32(x).to_bits()
                } else {
                    half::bf16::from_f32(x).to_bits()
                }
            })
            .collect()
    };
    let (a, b) = (gen(), gen());
    let val = |x: u16| if f16 { f16_to_f64(x) } else { bf16_to_f64(x) };
    let round = |x: f32| {
        if f16 {
            half::f16::from_f32(x).to_bits()
        } else {
            half::bf16::from_f32(x).to_bits()
        }
    };
    let rows_valid = 45usize;
    let kernel = ProbeTile::kernel(f16).unwrap();
    let dims = ProbeTile::dims().unwrap();
    let (da, db) = (dev.up(&a), dev.up(&b));
    let nan = || vec![f32::NAN; n * n];
    let (dabt, dab, dpb, datb) = (
        dev.up(&nan()),
        dev.up(&nan()),
        dev.up(&nan()),
        dev.up(&nan()),
    );
    let dmax = dev.up(&vec![f32::NAN; n]);
    let dscaled = dev.up(&vec![0x7fffu16; n * n]);
    let p = PaProbeTileParams {
        a: dev.ptr(&da) as *const u16,
        b: dev.ptr(&db) as *const u16,
        abt: dev.ptr(&dabt) as *mut f32,
        ab: dev.ptr(&dab) as *mut f32,
        pb: dev.ptr(&dpb) as *mut f32,
        atb: dev.ptr(&datb) as *mut f32,
        row_max: dev.ptr(&dmax) as *mut f32,
        scaled: dev.ptr(&dscaled) as *mut u16,
        rows_valid: rows_valid as i32,
        _pad0: 0,
    };
    dev.run(kernel, &dims, &p);
    let abt = dev.down(&dabt);
    // Operands as the device used them: A with its zero-filled rows, B, and round(A B^T).
    let av = |m: usize, k: usize| {
        if m < rows_valid {
            val(a[m * n + k])
        } else {
            0.0
        }
    };
    let bv = |k: usize, j: usize| val(b[k * n + j]);
    let pv = |m: usize, k: usize| val(round(abt[m * n + k]));
    type Term<'a> = Box<dyn Fn(usize, usize, usize) -> f64 + 'a>;
    let products: [(&str, Vec<f32>, Term); 4] = [
        (
            "A B^T",
            abt.clone(),
            Box::new(|i, j, k| av(i, k) * bv(j, k)),
        ),
        (
            "A B",
            dev.down(&dab),
            Box::new(|i, j, k| av(i, k) * bv(k, j)),
        ),
        (
            "A^T B",
            dev.down(&datb),
            Box::new(|i, j, k| av(k, i) * bv(k, j)),
        ),
        (
            "round(A B^T) B",
            dev.down(&dpb),
            Box::new(|i, j, k| pv(i, k) * bv(k, j)),
        ),
    ];
    for (what, got, term) in &products {
        for i in 0..n {
            for j in 0..n {
                let exact: f64 = (0..n).map(|k| term(i, j, k)).sum();
                let s: f64 = (0..n).map(|k| term(i, j, k).abs()).sum();
                let bound = 4.0 * 17.0 * 2f64.powi(-23) * s;
                let g = got[i * n + j];
                assert!(
                    (g as f64 - exact).abs() <= bound,
                    "tile ops f16={f16} {what}[{i}][{j}]: gpu {g}, exact {exact}, bound {bound:e}"
                );
            }
        }
    }
    let (g_max, g_scaled) = (dev.down(&dmax), dev.down(&dscaled));
    for i in 0..n {
        let row = &abt[i * n..(i + 1) * n];
        let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(
            g_max[i].to_bits(),
            mx.to_bits(),
            "tile ops f16={f16} row_max[{i}]"
        );
        let scale = 1.0f32 / (i + 1) as f32;
        for j in 0..n {
            let want = if i < rows_valid {
                round(row[j] * scale)
            } else {
                0x7fff
            };
            assert_eq!(
                g_scaled[i * n + j],
                want,
                "tile ops f16={f16} scaled[{i}][{j}]"
            );
        }
    }
}

fn probes_agree_with_the_gpu(gpu: Gpu) {
    let dev = Device::new(gpu);
    shfl(&dev);
    ldmatrix(&dev);
    cp_async(&dev);
    for f16 in [false, true] {
        mma(&dev, f16, true);
        mma(&dev, f16, false);
    }
    convert(&dev);
    approx_math(&dev);
    gemm_tile(&dev);
    for f16 in [false, true] {
        tile_ops(&dev, f16);
    }
}

/// Without a device: [`p_bound`]'s arithmetic part holds between two emulator runs of the tile
/// kernel whose c agree bit for bit (same mma) and whose exp2 differ by up to 4 floats (ex2 off by
/// 2 ulp up in one, down in the other), i.e. more than a device and the exact model can differ.
fn p_bound_covers_ex2_moved_both_ways_on_the_emulator() {
    let a = spread_bf16(64 * 64, 42, false);
    let b = spread_bf16(64 * 64, 43, false);
    let (ha, hb) = (GuardedBuf::from_slice(&a), GuardedBuf::from_slice(&b));
    let run = |approx: Approx| {
        let (c, p) = (
            GuardedBuf::<f32>::filled(4096, f32::NAN),
            GuardedBuf::<f32>::filled(4096, f32::NAN),
        );
        let params = PaEmuGemmTileParams {
            a: ha.as_ptr(),
            b: hb.as_ptr(),
            c: c.as_mut_ptr(),
            p: p.as_mut_ptr(),
            scale: 0.125,
            a_kmajor: 0,
            b_kmajor: 0,
            _pad0: 0,
        };
        let options = Options::from(Schedule::Ascending).with_approx(approx);
        // SAFETY: params point into the GuardedBufs above, which cover what the kernel touches.
        unsafe {
            emu::launch(
                EmuGemmTile::kernel().unwrap(),
                &EmuGemmTile::dims(),
                &params,
                options,
            )
        }
        .unwrap();
        (c.to_vec(), p.to_vec())
    };
    let (c_up, p_up) = run(Approx::WorstCase(emu::Sign::Up));
    let (c_down, p_down) = run(Approx::WorstCase(emu::Sign::Down));
    assert_eq!(c_up, c_down);
    let k2 = (0.125f32 * std::f32::consts::LOG2_E) as f64;
    let mut moved = 0;
    for m in 0..64 {
        let row = &c_down[m * 64..(m + 1) * 64];
        let mx = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        for n in 0..64 {
            let (g, e) = (p_up[m * 64 + n] as f64, p_down[m * 64 + n] as f64);
            let x = (row[n] as f64 - mx) * k2;
            let bound = p_bound(e, x, 0.0, 0.125);
            assert!(
                (g - e).abs() <= bound,
                "p[{m}][{n}]: {g} vs {e}, bound {bound:e}"
            );
            moved += (g != e) as usize;
        }
    }
    // These logits span hundreds of units, so most p are exactly 0 or 1; the rest must move.
    assert!(moved >= 32, "only {moved} of 4096 p differ");
}

// ---- Hopper (sm_90a) probes ----

use emu_support::sm90::*;
use prefix_attn::sm90::TensorMapDesc;

fn sm90_sync(dev: &Device) {
    let (input, expected) = sync_case(51);
    let dims = ProbeSm90Sync::dims();
    let (di, dout) = (dev.up(&input), dev.up(&vec![0u32; expected.len()]));
    let p = PaProbeSm90SyncParams {
        in_: dev.ptr(&di) as *const u32,
        out: dev.ptr(&dout) as *mut u32,
    };
    dev.run(ProbeSm90Sync::kernel().unwrap(), &dims, &p);
    let (hi, hout) = (
        GuardedBuf::from_slice(&input),
        GuardedBuf::<u32>::filled(expected.len(), 0),
    );
    let q = PaProbeSm90SyncParams {
        in_: hi.as_ptr(),
        out: hout.as_mut_ptr(),
    };
    emulate(ProbeSm90Sync::kernel().unwrap(), &dims, &q);
    assert_bits_equal("probe_sm90_sync out", &dev.down(&dout), hout.as_slice());
}

fn sm90_tma(dev: &Device) {
    for case in tma_cases(52) {
        let count = case.coords.len();
        let coords: Vec<i32> = case.coords.iter().flatten().copied().collect();
        let box_bytes = case.desc.box_bytes().expect("valid case");
        let words = count * box_bytes as usize / 4;
        let dims = ProbeSm90Tma::dims(count as u32, box_bytes);

        let (dt, dc, dout) = (
            dev.up(&case.tensor),
            dev.up(&coords),
            dev.up(&vec![0u32; words]),
        );
        let desc = TensorMapDesc {
            global_address: dev.ptr(&dt),
            ..case.desc.clone()
        };
        let p = PaProbeSm90TmaParams {
            map: desc.encode_device().expect("cuTensorMapEncodeTiled"),
            coords: dev.ptr(&dc) as *const i32,
            out: dev.ptr(&dout) as *mut u32,
            box_bytes,
            rank: desc.rank() as u32,
            count: count as u32,
            _pad0: 0,
        };
        dev.run(ProbeSm90Tma::kernel().unwrap(), &dims, &p);

        let (ht, hc, hout) = (
            GuardedBuf::from_slice(&case.tensor),
            GuardedBuf::from_slice(&coords),
            GuardedBuf::<u32>::filled(words, 0),
        );
        let hdesc = TensorMapDesc {
            global_address: ht.as_ptr() as u64,
            ..case.desc.clone()
        };
        let q = PaProbeSm90TmaParams {
            map: hdesc.encode_emulator().expect("valid case"),
            coords: hc.as_ptr(),
            out: hout.as_mut_ptr(),
            ..p
        };
        emulate(ProbeSm90Tma::kernel().unwrap(), &dims, &q);
        assert_bits_equal(
            &format!("probe_sm90_tma ({})", case.name),
            &dev.down(&dout),
            hout.as_slice(),
        );
    }
}

/// Bound between the GPU and the emulator for one output of a chain of `ksteps` wgmmas, with M
/// the sum of |a_k b_k| over every k plus |c|. Every partial result (each step's c included) is
/// within rounding of a partial sum of those terms, so |c_j| <= M (to first order) and each
/// step's own terms plus |c_j| sum to S_j <= 2M. A step on the tensor core adds its 16 exact
/// products and c with at most 16 additions, each off by at most one f32 ulp (2^-23, truncation
/// included) of a partial sum bounded by S_j, and rounds once: at most 16 * 2^-23 * S_j +
/// 2^-23 * |d_j| <= 33 * 2^-23 * M. The emulator rounds the exact sum once: 2^-24 * M. Errors of
/// earlier steps pass through c unchanged, so over the chain |gpu - emu| <= ksteps * 34 *
/// 2^-23 * M; the bound used is ksteps * 36 * 2^-23 * M.
fn wgmma_bound(ksteps: usize, mag: f64) -> f64 {
    ksteps as f64 * 36.0 * 2f64.powi(-23) * mag
}

fn sm90_wgmma(dev: &Device, exact_inputs: bool) {
    let batch = wgmma_batch(wgmma_specs(), 53 + exact_inputs as u64, exact_inputs);
    let n = batch.cases.len();
    let cases = batch.case_bytes();
    let dims = ProbeSm90Wgmma::dims(n as u32);
    let (dcases, dimg, dfr, dc, dd) = (
        dev.up(&cases),
        dev.up(&batch.images),
        dev.up(&batch.a_frags),
        dev.up(&batch.c),
        dev.up(&vec![f32::NAN; n * WG_C]),
    );
    let p = PaProbeSm90WgmmaParams {
        cases: dev.ptr(&dcases) as *const PaProbeWgmmaCase,
        images: dev.ptr(&dimg) as *const u8,
        a_frags: dev.ptr(&dfr) as *const u32,
        c: dev.ptr(&dc) as *const f32,
        d: dev.ptr(&dd) as *mut f32,
    };
    dev.run(ProbeSm90Wgmma::kernel().unwrap(), &dims, &p);
    let (hcases, himg, hfr, hc, hd) = (
        GuardedBuf::from_slice(&cases),
        GuardedBuf::from_slice(&batch.images),
        GuardedBuf::from_slice(&batch.a_frags),
        GuardedBuf::from_slice(&batch.c),
        GuardedBuf::<f32>::filled(n * WG_C, f32::NAN),
    );
    let q = PaProbeSm90WgmmaParams {
        cases: hcases.as_ptr() as *const PaProbeWgmmaCase,
        images: himg.as_ptr(),
        a_frags: hfr.as_ptr(),
        c: hc.as_ptr(),
        d: hd.as_mut_ptr(),
    };
    emulate(ProbeSm90Wgmma::kernel().unwrap(), &dims, &q);
    let gpu = dev.down(&dd);
    for (ci, s) in batch.specs.iter().enumerate() {
        for m in 0..64 {
            for col in 0..s.n {
                let i = ci * WG_C + m * 256 + col;
                let (g, e) = (gpu[i], hd.as_slice()[i]);
                let what = format!(
                    "wgmma case {ci} (n {}, f16 {}, A regs {}, A {:?}, B {:?}, {} k-steps) \
                     d[{m}][{col}]: gpu {g}, emulator {e}",
                    s.n, s.f16, s.a_regs, s.a, s.b, s.ksteps
                );
                if exact_inputs {
                    assert_eq!(g.to_bits(), e.to_bits(), "{what}");
                } else {
                    let bound = wgmma_bound(s.ksteps, batch.mag[i]);
                    assert!(((g - e) as f64).abs() <= bound, "{what}, bound {bound:e}");
                }
            }
        }
    }
}

fn sm90_pipeline(dev: &Device) {
    let pc = pipeline_case(3, 54, true);
    let dims = ProbeSm90Pipeline::dims();
    let (dq, dk, dv) = (dev.up(&pc.q), dev.up(&pc.k), dev.up(&pc.v));
    let (ds, dout) = (
        dev.up(&vec![f32::NAN; 64 * 64]),
        dev.up(&vec![f32::NAN; 64 * 64]),
    );
    let dmaps = pipeline_maps(dev.ptr(&dq), dev.ptr(&dk), dev.ptr(&dv), pc.tiles);
    let p = PaProbeSm90PipelineParams {
        q_map: dmaps[0].encode_device().expect("q map"),
        k_map: dmaps[1].encode_device().expect("k map"),
        v_map: dmaps[2].encode_device().expect("v map"),
        s: dev.ptr(&ds) as *mut f32,
        o: dev.ptr(&dout) as *mut f32,
        tiles: pc.tiles as u32,
        _pad0: 0,
    };
    dev.run(ProbeSm90Pipeline::kernel().unwrap(), &dims, &p);
    let (hq, hk, hv) = (
        GuardedBuf::from_slice(&pc.q),
        GuardedBuf::from_slice(&pc.k),
        GuardedBuf::from_slice(&pc.v),
    );
    let (hs, hout) = (
        GuardedBuf::<f32>::filled(64 * 64, f32::NAN),
        GuardedBuf::<f32>::filled(64 * 64, f32::NAN),
    );
    let hmaps = pipeline_maps(
        hq.as_ptr() as u64,
        hk.as_ptr() as u64,
        hv.as_ptr() as u64,
        pc.tiles,
    );
    let q = PaProbeSm90PipelineParams {
        q_map: hmaps[0].encode_emulator().expect("q map"),
        k_map: hmaps[1].encode_emulator().expect("k map"),
        v_map: hmaps[2].encode_emulator().expect("v map"),
        s: hs.as_mut_ptr(),
        o: hout.as_mut_ptr(),
        tiles: pc.tiles as u32,
        _pad0: 0,
    };
    emulate(ProbeSm90Pipeline::kernel().unwrap(), &dims, &q);
    // Exactly representable inputs: every product and partial sum is exact in f32 on both sides.
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    assert_bits_equal(
        "probe_sm90_pipeline s",
        &bits(&dev.down(&ds)),
        &bits(hs.as_slice()),
    );
    assert_bits_equal(
        "probe_sm90_pipeline o",
        &bits(&dev.down(&dout)),
        &bits(hout.as_slice()),
    );
}

fn hopper_probes_agree_with_the_gpu(gpu: Gpu) {
    let dev = Device::new(gpu);
    sm90_sync(&dev);
    sm90_tma(&dev);
    sm90_wgmma(&dev, true);
    sm90_wgmma(&dev, false);
    sm90_pipeline(&dev);
}
