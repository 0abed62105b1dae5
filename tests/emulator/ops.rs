//! The SwiGLU and rotary kernels (csrc/kernels/swiglu.cu, rotary.cu) on the CPU emulator under
//! all three schedules (identical bits required: every thread writes only its own elements),
//! against the f64 reference, with guard bytes around every buffer.
//!
//! Inputs, the f64 reference's bounds and their derivation: tests/support/ops.rs (the device
//! tests, tests/gpu/ops.rs, use the same).

use crate::ops_support::{check_swiglu, random, swiglu_inputs, ulp, RotaryCheck};
use half::{bf16, f16};
use prefix_attn::emu::{self, check_schedules, watch, GuardedBuf};
use prefix_attn::layout::RowBuilder;
use prefix_attn::ops::rotary::{rotary_emulated, RotaryShape, TableAddrs};
use prefix_attn::ops::swiglu::{swiglu_emulated, SwigluShape};
use prefix_attn::ops::{LayerDtype, RawBuf};
use prefix_attn::rotary::{RotaryDirection, RotaryTable, DEFAULT_THETA};

fn swiglu_case<T: LayerDtype>(tokens: usize, ffn: usize, seed: u64) {
    let gu: Vec<T> = swiglu_inputs(tokens, ffn, seed);
    let gu_buf = GuardedBuf::from_slice(&gu);
    let out = GuardedBuf::<T>::filled(tokens * ffn, T::from_f64(f64::NAN));
    let shape = SwigluShape::fused(tokens, ffn);
    let base = gu_buf.as_ptr() as usize as u64;
    let (dims, params) = shape
        .prepare(
            RawBuf {
                addr: base,
                len: gu.len(),
            },
            RawBuf {
                addr: base + 2 * ffn as u64,
                len: gu.len() - ffn,
            },
            RawBuf {
                addr: out.as_ptr() as usize as u64,
                len: out.len(),
            },
        )
        .unwrap()
        .unwrap();
    check_schedules(
        prefix_attn::ops::swiglu::kernel::<T>().unwrap().name(),
        seed,
        &[watch("gate_up", &gu_buf), watch("out", &out)],
        |s| unsafe {
            emu::launch(
                prefix_attn::ops::swiglu::kernel::<T>().unwrap(),
                &dims,
                &params,
                s,
            )
        },
    )
    .unwrap();
    check_swiglu(&gu, tokens, ffn, out.as_slice(), ffn).unwrap();
}

#[test]
fn swiglu_matches_the_reference_under_every_schedule() {
    swiglu_case::<bf16>(37, 48, 1);
    swiglu_case::<f16>(19, 64, 2);
}

#[test]
fn swiglu_checks_its_views() {
    let a = GuardedBuf::<bf16>::filled(64, bf16::ZERO);
    let raw = RawBuf {
        addr: a.as_ptr() as usize as u64,
        len: 64,
    };
    let odd = RawBuf {
        addr: raw.addr + 2,
        len: 63,
    };
    assert!(
        SwigluShape::fused(2, 12).prepare(raw, raw, raw).is_err(),
        "ffn not a multiple of 8"
    );
    assert!(
        SwigluShape::fused(4, 16).prepare(raw, raw, raw).is_err(),
        "too short"
    );
    assert!(
        SwigluShape::fused(2, 16).prepare(odd, raw, raw).is_err(),
        "misaligned"
    );
    assert!(SwigluShape::fused(0, 16)
        .prepare(raw, raw, raw)
        .unwrap()
        .is_none());
    let mut out = vec![bf16::ZERO; 16];
    // Host Vecs of bf16 are only 2-byte aligned: the typed error, never a bad launch.
    let r = swiglu_emulated(
        &SwigluShape::fused(1, 8),
        &a.as_slice()[..16],
        &a.as_slice()[8..],
        &mut out,
        emu::Schedule::Ascending,
    );
    if let Err(e) = r {
        assert!(
            e.to_string().contains("aligned") || e.to_string().contains("length"),
            "{e}"
        );
    }
}

fn rotary_case<T: LayerDtype>(seed: u64) {
    // Positions from a real layout: a prompt shared by three completions, a packed document,
    // padding (position 0).
    let mut row = RowBuilder::new();
    row.prefix_completions(11, &[6, 9, 4]).unwrap();
    row.document(5).unwrap();
    let row = row.finish(40).unwrap();
    let positions = row.positions().to_vec();
    let (q_heads, kv_heads, d) = (4, 2, 32);
    let width = (q_heads + 2 * kv_heads) * d; // a fused QKV row: only Q and K turn
    let table = RotaryTable::for_positions(d, &positions, DEFAULT_THETA).unwrap();
    let x: Vec<T> = random(positions.len() * width, -2.0, 2.0, seed);
    let buf = GuardedBuf::from_slice(&x);
    let pos = GuardedBuf::from_slice(&positions);
    let shape = RotaryShape {
        tokens: positions.len(),
        heads: q_heads + kv_heads,
        head_dim: d,
        token_stride: width,
    };
    for direction in [RotaryDirection::Forward, RotaryDirection::Inverse] {
        let (dims, params) = shape
            .prepare(
                RawBuf {
                    addr: buf.as_ptr() as usize as u64,
                    len: x.len(),
                },
                RawBuf::of(pos.as_slice()),
                TableAddrs::host(&table),
                direction,
            )
            .unwrap()
            .unwrap();
        check_schedules(
            prefix_attn::ops::rotary::kernel::<T>().unwrap().name(),
            seed,
            &[watch("x", &buf), watch("positions", &pos)],
            |s| unsafe {
                emu::launch(
                    prefix_attn::ops::rotary::kernel::<T>().unwrap(),
                    &dims,
                    &params,
                    s,
                )
            },
        )
        .unwrap();
        RotaryCheck {
            input: &x,
            positions: &positions,
            turned: q_heads + kv_heads,
            head_dim: d,
            width,
        }
        .check(buf.as_slice(), direction)
        .unwrap();
        buf.as_mut_slice_for_test(&x);
    }
}

trait Reset<T> {
    fn as_mut_slice_for_test(&self, data: &[T]);
}

impl<T: emu::Element> Reset<T> for GuardedBuf<T> {
    /// Puts `data` back (the next direction starts from the same input).
    fn as_mut_slice_for_test(&self, data: &[T]) {
        // SAFETY: the data area holds data.len() elements (the buffer was made from it).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.as_mut_ptr(), data.len()) };
    }
}

#[test]
fn rotary_matches_the_reference_under_every_schedule() {
    rotary_case::<bf16>(3);
    rotary_case::<f16>(4);
}

#[test]
fn rotary_inverse_undoes_the_embedding_and_bad_input_is_an_error() {
    let positions: Vec<i32> = (0..24).map(|t| (t * 5) % 17).collect();
    let table = RotaryTable::for_positions(16, &positions, DEFAULT_THETA).unwrap();
    let x: Vec<f16> = random(24 * 2 * 16, -1.0, 1.0, 9);
    let mut y = GuardedBuf::from_slice(&x);
    let shape = RotaryShape {
        tokens: 24,
        heads: 2,
        head_dim: 16,
        token_stride: 32,
    };
    rotary_emulated(
        &shape,
        y.as_mut_slice(),
        &positions,
        &table,
        RotaryDirection::Forward,
        emu::Schedule::Ascending,
    )
    .unwrap();
    rotary_emulated(
        &shape,
        y.as_mut_slice(),
        &positions,
        &table,
        RotaryDirection::Inverse,
        emu::Schedule::Ascending,
    )
    .unwrap();
    // Each pair (x0, x1) turns into outputs of magnitude <= m = |x0| + |x1|, each rounded to f16
    // (half an ulp at m); turning back mixes the two errors with |c| + |s| <= sqrt(2) and rounds
    // once more: within 1.21 + 0.5 < 2 ulp at m.
    let half = 8;
    for (e, (a, b)) in y.as_slice().iter().zip(&x).enumerate() {
        let (h, i) = (e / 16 * 16, e % half);
        let m = x[h + i].to_f64().abs() + x[h + i + half].to_f64().abs();
        assert!(
            (a.to_f64() - b.to_f64()).abs() <= 2.0 * ulp::<f16>(m),
            "[{e}]: {a} vs {b}"
        );
    }
    let bad = [0, 17];
    let two = RotaryShape { tokens: 2, ..shape };
    assert!(rotary_emulated(
        &two,
        y.as_mut_slice(),
        &bad,
        &table,
        RotaryDirection::Forward,
        emu::Schedule::Ascending
    )
    .is_err());
    assert!(rotary_emulated(
        &shape,
        y.as_mut_slice(),
        &positions[1..],
        &table,
        RotaryDirection::Forward,
        emu::Schedule::Ascending
    )
    .is_err());
    let wide = RotaryShape {
        token_stride: 31,
        ..shape
    };
    assert!(rotary_emulated(
        &wide,
        y.as_mut_slice(),
        &positions,
        &table,
        RotaryDirection::Forward,
        emu::Schedule::Ascending
    )
    .is_err());
    let other = RotaryTable::new(8, 20, DEFAULT_THETA).unwrap();
    assert!(rotary_emulated(
        &shape,
        y.as_mut_slice(),
        &positions,
        &other,
        RotaryDirection::Forward,
        emu::Schedule::Ascending
    )
    .is_err());
}
