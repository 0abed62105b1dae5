//! Reference models of the Hopper features for the tests, written from the PTX ISA text (not
//! from the emulator's C++): the swizzle patterns, the TMA box layout with zero fill, the wgmma
//! canonical shared-memory layouts and matrix descriptors, the register fragments, and the
//! emulator's defined wgmma arithmetic.

use prefix_attn::ffi::emu::*;
use prefix_attn::sm90::{TensorMapDesc, TmaSwizzle};

/// PTX ISA "Tensor swizzling modes" / wgmma "Shared Memory Matrix Layout": within each
/// 1024/512/256-byte repeat the 16-byte chunk index (bits 4..) is XORed with the 128-byte line
/// index (bits 7..), 3 / 2 / 1 bits wide. `bits`: 0 none, 1 (32B), 2 (64B), 3 (128B).
pub fn swizzle(addr: usize, bits: u32) -> usize {
    let mask = (1usize << bits) - 1;
    addr ^ (((addr >> 7) & mask) << 4)
}

pub fn tma_swizzle_bits(s: TmaSwizzle) -> u32 {
    match s {
        TmaSwizzle::None => 0,
        TmaSwizzle::B32 => 1,
        TmaSwizzle::B64 => 2,
        TmaSwizzle::B128 => 3,
    }
}

/// The bytes a TMA load of `desc`'s box at `coords` leaves in shared memory (the destination
/// 1024-byte aligned): the box dense, dimension 0 fastest, out-of-bounds elements zero, then
/// swizzled. `global` is the tensor's memory, `desc.global_address` its first byte.
pub fn tma_box(desc: &TensorMapDesc, global: &[u8], coords: &[i32]) -> Vec<u8> {
    let rank = desc.rank();
    let eb = desc.dtype.bytes() as usize;
    let boxd: Vec<usize> = desc.box_dims.iter().map(|&b| b as usize).collect();
    let total: usize = boxd.iter().product::<usize>() * eb;
    let mut dense = vec![0u8; total];
    let count: usize = boxd.iter().product();
    for e in 0..count {
        let mut rest = e;
        let mut offset = 0u64;
        let mut inside = true;
        for d in 0..rank {
            let i = rest % boxd[d];
            rest /= boxd[d];
            let g = coords[d] as i64 + i as i64;
            if g < 0 || g >= desc.dims[d] as i64 {
                inside = false;
            } else {
                offset += g as u64
                    * if d == 0 {
                        eb as u64
                    } else {
                        desc.strides[d - 1]
                    };
            }
        }
        if inside {
            let o = offset as usize;
            dense[e * eb..(e + 1) * eb].copy_from_slice(&global[o..o + eb]);
        }
    }
    let bits = tma_swizzle_bits(desc.swizzle);
    let mut out = vec![0u8; total];
    for chunk in (0..total).step_by(16) {
        let to = swizzle(chunk, bits);
        out[to..to + 16].copy_from_slice(&dense[chunk..chunk + 16]);
    }
    out
}

/// A wgmma operand's shared-memory layout: swizzle of the descriptor (0 none, 1 128B, 2 64B,
/// 3 32B), major-ness, and which of the two core-matrix orders an unswizzled layout uses.
#[derive(Debug, Clone, Copy)]
pub struct OperandLayout {
    pub desc_swizzle: u32,
    pub mn_major: bool,
    pub chunk_outer: bool,
}

impl OperandLayout {
    fn row_bytes(&self) -> usize {
        match self.desc_swizzle {
            1 => 128,
            2 => 64,
            3 => 32,
            _ => 16,
        }
    }
    fn xor_bits(&self) -> u32 {
        match self.desc_swizzle {
            1 => 3,
            2 => 2,
            3 => 1,
            _ => 0,
        }
    }
}

/// An operand of `rows` (M or N) x `k` 16-bit elements laid out for wgmma: where each element
/// goes (relative to the 1024-aligned operand start, swizzle applied), and the descriptor
/// fields (start relative to the operand, LBO, SBO) of each k-step of 16.
pub struct PlacedOperand {
    pub bytes: usize,
    pub addr: Vec<usize>, // [r * k + kk]
    pub steps: Vec<(usize, usize, usize)>,
}

/// Lays an operand out by the PTX ISA's canonical layouts ("Shared Memory Matrix Layout",
/// "Strides"): K-major: 8-row groups SBO apart, rows of W bytes (swizzled) or 16-byte core
/// matrix rows with the two 8-element k halves LBO apart (none); MN-major: W/2 MN elements per
/// row, MN groups LBO apart and 8-k groups SBO apart (swizzled), or 8x8 core matrices with MN
/// groups SBO and k groups LBO apart (none).
pub fn place_operand(rows: usize, k: usize, l: OperandLayout) -> PlacedOperand {
    assert!(rows % 8 == 0 && k % 16 == 0);
    let w = l.row_bytes();
    let mut addr = vec![0usize; rows * k];
    let mut steps = vec![];
    let bytes;
    if !l.mn_major {
        if l.desc_swizzle != 0 {
            // K split into groups of w/2 elements; each group a [rows][w] tile.
            let per = w / 2;
            let groups = k.div_ceil(per);
            bytes = groups * rows * w;
            for r in 0..rows {
                for kk in 0..k {
                    addr[r * k + kk] = (kk / per) * rows * w + r * w + (kk % per) * 2;
                }
            }
            for j in 0..k / 16 {
                let byte = 32 * j;
                // LBO is unused here; the ISA says it is assumed to be 1 (16 bytes).
                steps.push(((byte / w) * rows * w + byte % w, 16, 8 * w));
            }
        } else if l.chunk_outer {
            // [k chunk][row group][8 rows][16 bytes]
            let lbo = rows / 8 * 128;
            bytes = k / 8 * lbo;
            for r in 0..rows {
                for kk in 0..k {
                    addr[r * k + kk] = (kk / 8) * lbo + (r / 8) * 128 + (r % 8) * 16 + (kk % 8) * 2;
                }
            }
            for j in 0..k / 16 {
                steps.push((2 * j * lbo, lbo, 128));
            }
        } else {
            // [row group][k chunk][8 rows][16 bytes]
            let sbo = k / 8 * 128;
            bytes = rows / 8 * sbo;
            for r in 0..rows {
                for kk in 0..k {
                    addr[r * k + kk] = (r / 8) * sbo + (kk / 8) * 128 + (r % 8) * 16 + (kk % 8) * 2;
                }
            }
            for j in 0..k / 16 {
                steps.push((2 * j * 128, 128, sbo));
            }
        }
    } else if l.desc_swizzle != 0 {
        // MN groups of w/2 elements; each a [k][w] tile.
        let per = w / 2;
        let groups = rows.div_ceil(per);
        let lbo = k * w;
        bytes = groups * lbo;
        for r in 0..rows {
            for kk in 0..k {
                addr[r * k + kk] = (r / per) * lbo + kk * w + (r % per) * 2;
            }
        }
        for j in 0..k / 16 {
            steps.push((16 * j * w, lbo, 8 * w));
        }
    } else {
        // [MN group][k chunk][8 k][8 MN elements]
        let sbo = k / 8 * 128;
        bytes = rows / 8 * sbo;
        for r in 0..rows {
            for kk in 0..k {
                addr[r * k + kk] = (r / 8) * sbo + (kk / 8) * 128 + (kk % 8) * 16 + (r % 8) * 2;
            }
        }
        for j in 0..k / 16 {
            steps.push((2 * j * 128, 128, sbo));
        }
    }
    let bits = l.xor_bits();
    for a in addr.iter_mut() {
        *a = swizzle(*a, bits);
    }
    PlacedOperand {
        bytes: bytes.div_ceil(1024) * 1024,
        addr,
        steps,
    }
}

/// PTX ISA "Matrix Descriptor Format": start >> 4 in bits 0-13, LBO >> 4 in 16-29, SBO >> 4 in
/// 32-45, base offset 0, swizzle in 62-63.
pub fn matrix_descriptor(start: usize, lbo: usize, sbo: usize, desc_swizzle: u32) -> u64 {
    assert!(start % 16 == 0 && lbo % 16 == 0 && sbo % 16 == 0);
    assert!(start < 1 << 18 && lbo < 1 << 18 && sbo < 1 << 18);
    ((start as u64 >> 4) & 0x3fff)
        | (((lbo as u64 >> 4) & 0x3fff) << 16)
        | (((sbo as u64 >> 4) & 0x3fff) << 32)
        | ((desc_swizzle as u64) << 62)
}

/// Row and column of accumulator register j of warpgroup thread t (PTX ISA, wgmma .m64nNk16
/// register fragment of D).
pub fn acc_pos(t: usize, j: usize) -> (usize, usize) {
    let (w, g, q) = (t / 32, (t % 32) / 4, t % 4);
    (16 * w + g + 8 * ((j / 2) % 2), 8 * (j / 4) + 2 * q + j % 2)
}

/// Row and low column of A-fragment register r of warpgroup thread t (wgmma .m64nNk16 A in
/// registers).
pub fn frag_a_pos(t: usize, r: usize) -> (usize, usize) {
    let (w, g, q) = (t / 32, (t % 32) / 4, t % 4);
    (16 * w + g + 8 * (r % 2), 2 * q + 8 * (r / 2))
}

/// The emulator's defined arithmetic for one output of one wgmma: start from c (or 0), add the
/// 16 exact products in k order in f64, round once to f32.
pub fn wgmma_step(c: f32, accumulate: bool, a: &[f64], b: &[f64]) -> f32 {
    let mut s = if accumulate { c as f64 } else { 0.0 };
    for k in 0..16 {
        s += a[k] * b[k];
    }
    s as f32
}

/// Decodes a bf16 (f16 = false) or f16 bit pattern.
pub fn dec16(bits: u16, f16: bool) -> f64 {
    if f16 {
        half::f16::from_bits(bits).to_f64()
    } else {
        half::bf16::from_bits(bits).to_f64()
    }
}

/// Round-to-nearest-even f32 -> bf16 bits.
pub fn to_bf16(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

pub const WGMMA_MAX_K: usize = PA_PROBE_WGMMA_MAX_K as usize;

// ---------------------------------------------------------------------------------------------
// Probe inputs shared by the emulator tests and the GPU fidelity test.

use super::{random_u32, rng, spread_bf16};
use prefix_attn::sm90::TmaDtype;
use rand::Rng;

/// One TMA probe launch: a tensor (its bytes), a map over it (global_address to be set by the
/// caller), and the box coordinates of each CTA.
pub struct TmaCase {
    pub name: &'static str,
    pub desc: TensorMapDesc,
    pub tensor: Vec<u8>,
    pub coords: Vec<[i32; 5]>,
}

/// A tensor map description without an address (set by whoever uploads the tensor).
fn desc(
    dtype: TmaDtype,
    dims: &[u64],
    strides: &[u64],
    box_dims: &[u32],
    swizzle: TmaSwizzle,
) -> TensorMapDesc {
    TensorMapDesc {
        dtype,
        global_address: 0,
        dims: dims.to_vec(),
        strides: strides.to_vec(),
        box_dims: box_dims.to_vec(),
        swizzle,
    }
}

fn tma_case(name: &'static str, desc: TensorMapDesc, coords: &[&[i32]], seed: u64) -> TmaCase {
    let rank = desc.rank();
    let last = if rank == 1 {
        desc.dims[0] * desc.dtype.bytes() as u64
    } else {
        desc.strides[rank - 2] * desc.dims[rank - 1]
    };
    let bytes = (last as usize).div_ceil(16) * 16;
    let tensor: Vec<u8> = random_u32(bytes / 4, seed)
        .into_iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let coords = coords
        .iter()
        .map(|c| {
            let mut a = [0i32; 5];
            a[..c.len()].copy_from_slice(c);
            a
        })
        .collect();
    TmaCase {
        name,
        desc,
        tensor,
        coords,
    }
}

/// Every rank, swizzle and element size, boxes inside, across and outside each edge.
pub fn tma_cases(seed: u64) -> Vec<TmaCase> {
    vec![
        tma_case(
            "2-D bf16, 128B swizzle",
            desc(
                TmaDtype::Bf16,
                &[64, 100],
                &[128],
                &[64, 32],
                TmaSwizzle::B128,
            ),
            &[&[0, 0], &[0, 80], &[0, -5], &[-8, 10], &[8, 99], &[64, 0]],
            seed,
        ),
        tma_case(
            "3-D f32, no swizzle, padded rows",
            desc(
                TmaDtype::F32,
                &[12, 7, 5],
                &[64, 512],
                &[8, 4, 2],
                TmaSwizzle::None,
            ),
            &[&[0, 0, 0], &[8, 5, 4], &[-4, -2, -1], &[4, 3, 2]],
            seed + 1,
        ),
        tma_case(
            "2-D u8, 32B swizzle",
            desc(TmaDtype::U8, &[48, 40], &[48], &[32, 16], TmaSwizzle::B32),
            &[&[0, 0], &[16, 30], &[-16, -8]],
            seed + 2,
        ),
        tma_case(
            "4-D u16, 64B swizzle",
            desc(
                TmaDtype::U16,
                &[32, 3, 4, 2],
                &[64, 192, 768],
                &[32, 2, 3, 2],
                TmaSwizzle::B64,
            ),
            &[&[0, 0, 0, 0], &[0, 2, 3, 1], &[-16, -1, 1, 0]],
            seed + 3,
        ),
        tma_case(
            "5-D f16, no swizzle",
            desc(
                TmaDtype::F16,
                &[8, 2, 2, 2, 3],
                &[16, 32, 64, 128],
                &[8, 2, 2, 2, 2],
                TmaSwizzle::None,
            ),
            &[&[0, 0, 0, 0, 0], &[0, 1, 1, 1, 2], &[0, -1, 0, 1, -1]],
            seed + 4,
        ),
        tma_case(
            "1-D u32",
            desc(TmaDtype::U32, &[100], &[], &[64], TmaSwizzle::None),
            &[&[0], &[60], &[-16]],
            seed + 5,
        ),
        tma_case(
            "2-D f64, 128B swizzle",
            desc(
                TmaDtype::F64,
                &[16, 20],
                &[256],
                &[16, 16],
                TmaSwizzle::B128,
            ),
            &[&[0, 0], &[0, 8], &[-8, -8]],
            seed + 6,
        ),
    ]
}

/// What one wgmma probe case computes, in the probe's C layout ([64][256] per case).
pub struct WgmmaCaseSpec {
    pub n: usize,
    pub f16: bool,
    pub a_regs: bool,
    pub a: OperandLayout,
    pub b: OperandLayout,
    pub ksteps: usize,
    pub scale_d: bool,
}

/// The inputs of a whole wgmma probe launch and the expected outputs.
pub struct WgmmaBatch {
    pub specs: Vec<WgmmaCaseSpec>,
    pub cases: Vec<PaProbeWgmmaCase>,
    pub images: Vec<u8>,
    pub a_frags: Vec<u32>,
    pub c: Vec<f32>,
    /// The emulator's defined arithmetic (exact expectation on the emulator).
    pub model: Vec<f32>,
    /// The exact result in f64, and sum |terms| + |c| per output (for bounds).
    pub exact: Vec<f64>,
    pub mag: Vec<f64>,
}

pub const WG_C: usize = 64 * 256;

fn layout(desc_swizzle: u32, mn_major: bool, chunk_outer: bool) -> OperandLayout {
    OperandLayout {
        desc_swizzle,
        mn_major,
        chunk_outer,
    }
}

/// The wgmma probe cases: every operand source and major-ness under every swizzle at N = 64,
/// then N = 16, 128, 256 and f16 samples.
pub fn wgmma_specs() -> Vec<WgmmaCaseSpec> {
    let mut v = vec![];
    // (a_regs, trans_a, trans_b)
    let modes = [
        (false, false, false),
        (false, false, true),
        (false, true, false),
        (false, true, true),
        (true, false, false),
        (true, false, true),
    ];
    for (i, &(a_regs, ta, tb)) in modes.iter().enumerate() {
        for sw in 0..4u32 {
            v.push(WgmmaCaseSpec {
                n: 64,
                f16: false,
                a_regs,
                a: layout(sw, ta, (i + sw as usize) % 2 == 0),
                b: layout((sw + i as u32) % 4, tb, (i + sw as usize) % 2 == 1),
                ksteps: 2,
                scale_d: (i + sw as usize) % 2 == 0,
            });
        }
    }
    let mut add = |n, f16, a_regs, a: OperandLayout, b: OperandLayout, ksteps| {
        v.push(WgmmaCaseSpec {
            n,
            f16,
            a_regs,
            a,
            b,
            ksteps,
            scale_d: true,
        })
    };
    add(
        64,
        true,
        false,
        layout(1, false, false),
        layout(1, false, false),
        2,
    );
    add(
        64,
        true,
        true,
        layout(0, false, true),
        layout(1, true, false),
        3,
    );
    add(
        64,
        true,
        false,
        layout(0, true, false),
        layout(0, true, true),
        2,
    );
    add(
        16,
        false,
        false,
        layout(3, false, false),
        layout(3, false, false),
        4,
    );
    add(
        16,
        false,
        true,
        layout(0, false, false),
        layout(0, true, false),
        4,
    );
    add(
        128,
        false,
        false,
        layout(1, false, false),
        layout(1, true, false),
        2,
    );
    add(
        128,
        false,
        true,
        layout(0, false, false),
        layout(1, true, false),
        4,
    );
    add(
        128,
        true,
        false,
        layout(2, true, false),
        layout(2, false, false),
        2,
    );
    add(
        256,
        false,
        false,
        layout(1, false, false),
        layout(1, false, false),
        1,
    );
    add(
        256,
        false,
        true,
        layout(0, false, false),
        layout(1, true, false),
        2,
    );
    add(
        256,
        true,
        false,
        layout(0, true, true),
        layout(0, true, false),
        2,
    );
    v
}

/// Builds the probe's inputs for `specs`. `exact_inputs`: values k/8 with |k| <= 8, for which
/// every product and partial sum is exact in f32 (one right answer on any hardware).
pub fn wgmma_batch(specs: Vec<WgmmaCaseSpec>, seed: u64, exact_inputs: bool) -> WgmmaBatch {
    let mut r = rng(seed);
    let mut cases = vec![];
    let mut images: Vec<u8> = vec![];
    let ncase = specs.len();
    let mut a_frags = vec![0u32; ncase * WGMMA_MAX_K * 128 * 4];
    let mut c = vec![0f32; ncase * WG_C];
    let mut model = vec![0f32; ncase * WG_C];
    let mut exact = vec![0f64; ncase * WG_C];
    let mut mag = vec![0f64; ncase * WG_C];
    for (ci, s) in specs.iter().enumerate() {
        let k = 16 * s.ksteps;
        let gen = |r: &mut rand::rngs::StdRng, n: usize| -> Vec<u16> {
            if exact_inputs {
                (0..n)
                    .map(|_| {
                        let x = r.random_range(-8i32..=8) as f32 / 8.0;
                        if s.f16 {
                            half::f16::from_f32(x).to_bits()
                        } else {
                            half::bf16::from_f32(x).to_bits()
                        }
                    })
                    .collect()
            } else {
                spread_bf16(n, r.random(), s.f16)
            }
        };
        let a = gen(&mut r, 64 * k);
        let b = gen(&mut r, s.n * k);
        for m in 0..64 {
            for n in 0..s.n {
                let x = if exact_inputs {
                    r.random_range(-64i32..64) as f32 / 4.0
                } else {
                    r.random_range(-8.0f32..8.0)
                };
                c[ci * WG_C + m * 256 + n] = x;
            }
        }
        // The shared-memory image: A (unless in registers), then B, each 1024-aligned.
        let pa = place_operand(64, k, s.a);
        let pb = place_operand(s.n, k, s.b);
        let a_bytes = if s.a_regs { 0 } else { pa.bytes };
        let image_bytes = a_bytes + pb.bytes;
        assert!(
            image_bytes <= PA_PROBE_WGMMA_MAX_IMAGE as usize,
            "case {ci}: image of {image_bytes} bytes"
        );
        let mut image = vec![0u8; image_bytes];
        if !s.a_regs {
            for m in 0..64 {
                for kk in 0..k {
                    let at = pa.addr[m * k + kk];
                    image[at..at + 2].copy_from_slice(&a[m * k + kk].to_le_bytes());
                }
            }
        }
        for n in 0..s.n {
            for kk in 0..k {
                let at = a_bytes + pb.addr[n * k + kk];
                image[at..at + 2].copy_from_slice(&b[n * k + kk].to_le_bytes());
            }
        }
        let mut case = PaProbeWgmmaCase {
            n: s.n as u32,
            f16: s.f16 as u32,
            a_regs: s.a_regs as u32,
            trans_a: (s.a.mn_major && !s.a_regs) as u32,
            trans_b: s.b.mn_major as u32,
            ksteps: s.ksteps as u32,
            scale_d: s.scale_d as u32,
            image_bytes: image_bytes as u32,
            image_offset: images.len() as u64,
            desc_a: [0; WGMMA_MAX_K],
            desc_b: [0; WGMMA_MAX_K],
        };
        for j in 0..s.ksteps {
            if !s.a_regs {
                let (start, lbo, sbo) = pa.steps[j];
                case.desc_a[j] = matrix_descriptor(start, lbo, sbo, s.a.desc_swizzle);
            }
            let (start, lbo, sbo) = pb.steps[j];
            case.desc_b[j] = matrix_descriptor(a_bytes + start, lbo, sbo, s.b.desc_swizzle);
        }
        images.extend_from_slice(&image);
        cases.push(case);
        if s.a_regs {
            for j in 0..s.ksteps {
                for t in 0..128 {
                    for reg in 0..4 {
                        let (row, col) = frag_a_pos(t, reg);
                        let lo = a[row * k + 16 * j + col] as u32;
                        let hi = a[row * k + 16 * j + col + 1] as u32;
                        a_frags[((ci * WGMMA_MAX_K + j) * 128 + t) * 4 + reg] = lo | hi << 16;
                    }
                }
            }
        }
        let af: Vec<f64> = a.iter().map(|&x| dec16(x, s.f16)).collect();
        let bf: Vec<f64> = b.iter().map(|&x| dec16(x, s.f16)).collect();
        for m in 0..64 {
            for n in 0..s.n {
                let i = ci * WG_C + m * 256 + n;
                let c0 = c[i];
                let mut d = c0;
                for j in 0..s.ksteps {
                    let arow = &af[m * k + 16 * j..m * k + 16 * j + 16];
                    let brow = &bf[n * k + 16 * j..n * k + 16 * j + 16];
                    d = wgmma_step(d, j > 0 || s.scale_d, arow, brow);
                }
                model[i] = d;
                let c_in = if s.scale_d { c0 as f64 } else { 0.0 };
                let mut e = c_in;
                let mut sum_abs = c_in.abs();
                for kk in 0..k {
                    let p = af[m * k + kk] * bf[n * k + kk];
                    e += p;
                    sum_abs += p.abs();
                }
                exact[i] = e;
                mag[i] = sum_abs;
            }
        }
    }
    WgmmaBatch {
        specs,
        cases,
        images,
        a_frags,
        c,
        model,
        exact,
        mag,
    }
}

/// The pipeline probe's inputs (bf16 Q [64][64], K and V [tiles * 64][64]) and its expected
/// outputs under the emulator's arithmetic: S of the last tile and O.
pub struct PipelineCase {
    pub tiles: usize,
    pub q: Vec<u16>,
    pub k: Vec<u16>,
    pub v: Vec<u16>,
    pub s: Vec<f32>,
    pub o: Vec<f32>,
}

pub fn pipeline_case(tiles: usize, seed: u64, exact_inputs: bool) -> PipelineCase {
    let mut r = rng(seed);
    let mut gen = |n: usize| -> Vec<u16> {
        (0..n)
            .map(|_| {
                if exact_inputs {
                    to_bf16(r.random_range(-8i32..=8) as f32 / 8.0)
                } else {
                    to_bf16(r.random_range(-1.0f32..1.0))
                }
            })
            .collect()
    };
    let q = gen(64 * 64);
    let k = gen(tiles * 64 * 64);
    let v = gen(tiles * 64 * 64);
    let f = |x: &[u16]| -> Vec<f64> { x.iter().map(|&b| dec16(b, false)).collect() };
    let (qf, kf, vf) = (f(&q), f(&k), f(&v));
    let mut s = vec![0f32; 64 * 64];
    let mut o = vec![0f32; 64 * 64];
    for t in 0..tiles {
        for m in 0..64 {
            for n in 0..64 {
                let mut acc = 0f32;
                for j in 0..4 {
                    let a = &qf[m * 64 + 16 * j..m * 64 + 16 * j + 16];
                    let b = &kf[(64 * t + n) * 64 + 16 * j..(64 * t + n) * 64 + 16 * j + 16];
                    acc = wgmma_step(acc, j > 0, a, b);
                }
                s[m * 64 + n] = acc;
            }
        }
        for m in 0..64 {
            let p: Vec<f64> = (0..64)
                .map(|n| dec16(to_bf16(s[m * 64 + n]), false))
                .collect();
            for n in 0..64 {
                let mut acc = o[m * 64 + n];
                for kb in 0..4 {
                    let b: Vec<f64> = (0..16)
                        .map(|kk| vf[(64 * t + 16 * kb + kk) * 64 + n])
                        .collect();
                    acc = wgmma_step(acc, t > 0 || kb > 0, &p[16 * kb..16 * kb + 16], &b);
                }
                o[m * 64 + n] = acc;
            }
        }
    }
    PipelineCase {
        tiles,
        q,
        k,
        v,
        s,
        o,
    }
}

/// The pipeline probe's three maps over Q, K and V at the given addresses.
pub fn pipeline_maps(q: u64, k: u64, v: u64, tiles: usize) -> [TensorMapDesc; 3] {
    let m = |addr, rows| {
        TensorMapDesc::matrix(
            TmaDtype::Bf16,
            addr,
            [rows, 64],
            128,
            [64, 64],
            TmaSwizzle::B128,
        )
    };
    [m(q, 64), m(k, 64 * tiles as u64), m(v, 64 * tiles as u64)]
}

/// The sync probe's input words and expected outputs (PA_PROBE_SYNC_WORDS per thread).
pub fn sync_case(seed: u64) -> (Vec<u32>, Vec<u32>) {
    let rounds = PA_PROBE_SYNC_ROUNDS as usize;
    let input = random_u32(rounds * 32 + 256, seed);
    let words = PA_PROBE_SYNC_WORDS as usize;
    let mut e = vec![0u32; 256 * words];
    for t in 0..256 {
        let (warp, lane) = (t / 32, t % 32);
        let o = &mut e[t * words..(t + 1) * words];
        o[0] = 0;
        o[1] = 1;
        o[2] = 1;
        if warp >= 1 {
            o[3] = (0..rounds).fold(0u32, |acc, r| {
                acc.wrapping_add(
                    input[32 * r + lane]
                        .wrapping_add(r as u32)
                        .wrapping_mul(r as u32 + 1),
                )
            });
        }
        if warp >= 6 {
            o[4] = (0..64).fold(0u32, |acc, i| {
                acc.wrapping_add(input[rounds * 32 + 128 + i] ^ 0x5a5a_5a5a)
            });
        }
        o[5] = if warp < 4 { 1 } else { 2 };
        o[6] = 1;
        o[7] = t as u32;
    }
    (input, e)
}

impl WgmmaBatch {
    /// The case structs as bytes (for GuardedBuf and device uploads; the struct is plain C).
    pub fn case_bytes(&self) -> Vec<u8> {
        let n = std::mem::size_of_val(self.cases.as_slice());
        // SAFETY: PaProbeWgmmaCase is a repr(C) struct of integers without padding holes that
        // matter (bytes are copied as they are).
        unsafe { std::slice::from_raw_parts(self.cases.as_ptr() as *const u8, n) }.to_vec()
    }
}
