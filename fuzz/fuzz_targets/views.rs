//! The raw entry's view checks (`attention::raw::check_tensor_view`, the check every call runs
//! on each tensor, and `check_written_disjoint`, the backward's overlap check) against address
//! sets enumerated element by element, for random shapes, strides, lengths and base addresses:
//!
//! - a view the check accepts has element 0 and every stride 16-byte aligned and never reaches
//!   an element at or past its `len`; a read view that satisfies both is accepted (the bound is
//!   exact), a written view accepted maps no two elements to one address, and dense or fused
//!   (token-major, head-major) written views are accepted;
//! - written views the overlap check accepts share no element with any other view of the call;
//!   separate buffers and disjoint head ranges of one fused buffer are accepted.
#![no_main]

use fuzz_oracle::input::Input;
use fuzz_oracle::note;
use fuzz_oracle::views::{elements, meet, reach, self_overlaps};
use libfuzzer_sys::fuzz_target;
use prefix_attn::attention::raw::{check_tensor_view, check_written_disjoint, RawTensor};
use prefix_attn::attention::Strides;
use prefix_attn::{AttnShape, Error};

const NAMES: [&str; 6] = ["dq", "dk", "dv", "q", "k", "v"];

fn shape(inp: &mut Input) -> AttnShape {
    let kv_heads = inp.int(1, 3);
    AttnShape {
        rows: inp.int(1, 3),
        n: inp.int(1, 6),
        q_heads: kv_heads * inp.int(1, 3),
        kv_heads,
        head_dim: if inp.chance(200) {
            8 * inp.int(1, 8)
        } else {
            inp.int(1, 40)
        },
    }
}

fn dims(s: &AttnShape, heads: usize) -> [usize; 4] {
    [s.rows, s.n, heads, s.head_dim]
}

fn arr(s: Strides) -> [usize; 3] {
    [s.row, s.token, s.head]
}

/// How a view is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[rows, n, heads, d]`, nothing else in the buffer.
    Dense,
    /// Heads `h0..h0 + heads` of a `[rows, n, total, d]` buffer.
    TokenMajor { total: usize, h0: usize },
    /// Heads `h0..h0 + heads` of a `[rows, total, n, d]` buffer.
    HeadMajor { total: usize, h0: usize },
    /// Anything.
    Random,
}

/// Strides and the offset of element 0 (in elements) of a view laid out as `l`.
fn lay_out(inp: &mut Input, s: &AttnShape, heads: usize, l: Layout) -> (Strides, usize) {
    let d = s.head_dim;
    match l {
        Layout::Dense => (Strides::dense(s.n, heads, d), 0),
        Layout::TokenMajor { total, h0 } => (
            Strides {
                row: s.n * total * d,
                token: total * d,
                head: d,
            },
            h0 * d,
        ),
        Layout::HeadMajor { total, h0 } => (
            Strides {
                row: total * s.n * d,
                token: d,
                head: s.n * d,
            },
            h0 * s.n * d,
        ),
        Layout::Random => {
            let span = s.n * heads * d;
            let stride = |inp: &mut Input| match inp.byte() {
                0..=179 => 8 * inp.int(0, (span / 4).max(2)),
                180..=229 => inp.int(0, span.max(2) * 2),
                230..=249 => (i64::MAX as usize) - (i64::MAX as usize % 8) + 8 * inp.int(0, 1),
                _ => usize::MAX - inp.int(0, 7),
            };
            (
                Strides {
                    row: stride(inp),
                    token: stride(inp),
                    head: stride(inp),
                },
                0,
            )
        }
    }
}

fn layout(inp: &mut Input, heads: usize) -> Layout {
    let total = heads + inp.int(0, 4);
    let h0 = inp.int(0, total - heads);
    match inp.int(0, 3) {
        0 => Layout::Dense,
        1 => Layout::TokenMajor { total, h0 },
        2 => Layout::HeadMajor { total, h0 },
        _ => Layout::Random,
    }
}

/// One view alone.
fn single(inp: &mut Input, s: &AttnShape) {
    let heads = if inp.chance(128) {
        s.q_heads
    } else {
        s.kv_heads
    };
    let l = layout(inp, heads);
    let (st, _) = lay_out(inp, s, heads, l);
    let need = reach(dims(s, heads), arr(st));
    let len = match inp.byte() {
        0..=149 => need.min(1 << 40) as usize,
        150..=219 => (need as i128 + inp.int(0, 6) as i128 - 3).clamp(0, 1 << 40) as usize,
        _ => inp.int(0, 4096),
    };
    let addr = if inp.chance(220) {
        16 * inp.int(0, 1 << 20) as u64
    } else {
        inp.u64()
    };
    let written = inp.chance(128);
    let name = inp.pick(&NAMES);
    let t = RawTensor {
        addr,
        len,
        strides: st,
    };
    let got = check_tensor_view(name, s, &t, heads, written);

    note(
        &format!(
            "single {} {:?}: {}",
            if written { "written" } else { "read" },
            l,
            if got.is_ok() { "accepted" } else { "refused" }
        )
        .replace(|c: char| c.is_ascii_digit(), ""),
    );
    let aligned = addr % 16 == 0 && arr(st).iter().all(|x| x % 8 == 0);
    let fits = arr(st).iter().all(|&x| x <= i64::MAX as usize) && need <= len as u128;
    match &got {
        Ok(()) => {
            assert!(aligned, "accepted a misaligned view {t:?}");
            assert!(
                fits,
                "accepted a view reaching element {need} of {len}: {t:?} {s:?}"
            );
            if written {
                assert!(
                    !self_overlaps(dims(s, heads), arr(st)),
                    "accepted a self-overlapping written view {t:?} {s:?}"
                );
            }
        }
        Err(Error::InvalidView { what, .. } | Error::WrongHeadCount { what, .. }) => {
            assert_eq!(*what, name);
            if !written {
                assert!(
                    !(aligned && fits),
                    "refused an aligned read view inside its buffer: {got:?} {t:?} {s:?}"
                );
            }
            if written && aligned && fits && l != Layout::Random {
                panic!("refused a {l:?} written view: {got:?} {t:?} {s:?}");
            }
        }
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

/// Several views of one call, some written, in separate or shared buffers.
fn several(inp: &mut Input, s: &AttnShape) {
    let count = inp.int(2, 5);
    let fused = inp.int(0, 3); // 0: separate buffers; 1: token-major; 2: head-major; 3: random
    let heads: Vec<usize> = (0..count)
        .map(|_| {
            if inp.chance(128) {
                s.q_heads
            } else {
                s.kv_heads
            }
        })
        .collect();
    // A fused buffer holds every view's heads side by side (or overlapping, when h0 is off).
    let total: usize = heads.iter().sum::<usize>() + inp.int(0, 2);
    let mut next_h0 = 0;
    let mut next_addr = 16 * inp.int(1, 64) as u64;
    let mut views = Vec::new();
    let mut by_construction_disjoint = true;
    for (k, &h) in heads.iter().enumerate() {
        let mut h0 = next_h0;
        if inp.chance(30) {
            h0 = inp.int(0, total - h);
            by_construction_disjoint = false;
        }
        next_h0 = h0 + h;
        let (l, base) = match fused {
            1 => (Layout::TokenMajor { total, h0 }, 4096),
            2 => (Layout::HeadMajor { total, h0 }, 4096),
            3 => {
                by_construction_disjoint = false;
                (Layout::Random, 16 * inp.int(256, 300) as u64)
            }
            _ => {
                let a = next_addr;
                (Layout::Dense, a)
            }
        };
        let (st, off) = lay_out(inp, s, h, l);
        let mut addr = base + 2 * off as u64;
        let need = reach(dims(s, h), arr(st));
        if fused == 0 {
            // Separate buffers, one after the other (sometimes moved back onto the previous).
            if k > 0 && inp.chance(40) {
                addr = addr.saturating_sub(16 * inp.int(1, 8) as u64);
                by_construction_disjoint = false;
            }
            next_addr = addr + (2 * need as u64).div_ceil(16) * 16 + 16 * inp.int(0, 2) as u64;
        }
        let t = RawTensor {
            addr,
            len: need as usize,
            strides: st,
        };
        let written = k == 0 || inp.chance(100);
        views.push((NAMES[k], t, h, written));
    }
    // A call checks every view on its own first; the overlap check only sees views that pass.
    let ok_alone = views
        .iter()
        .all(|&(name, t, h, w)| check_tensor_view(name, s, &t, h, w).is_ok());
    let written: Vec<_> = views
        .iter()
        .filter(|v| v.3)
        .map(|&(n, t, h, _)| (n, t, h))
        .collect();
    let read: Vec<_> = views
        .iter()
        .filter(|v| !v.3)
        .map(|&(n, t, h, _)| (n, t, h))
        .collect();
    let got = check_written_disjoint(s, &written, &read);
    if !ok_alone {
        return;
    }
    let elems: Vec<Vec<u128>> = views
        .iter()
        .map(|&(_, t, h, _)| elements(t.addr, dims(s, h), arr(t.strides)))
        .collect();
    // Truly disjoint: every written view against every other view.
    let mut clash = None;
    for (i, vi) in views.iter().enumerate() {
        for (j, vj) in views.iter().enumerate() {
            if i != j && vi.3 && clash.is_none() {
                clash = meet(&elems[i], &elems[j]).map(|e| (vi.0, vj.0, e));
            }
        }
    }
    note(&format!(
        "several fused {fused}: {} {}",
        if got.is_ok() { "accepted" } else { "refused" },
        if clash.is_some() { "clash" } else { "disjoint" }
    ));
    match (&got, clash) {
        (Ok(()), Some((a, b, e))) => {
            panic!("accepted written {a} sharing element {e} with {b}: {views:?} {s:?}")
        }
        (Ok(()), None) => {}
        (Err(Error::InvalidView { what, .. }), _) => {
            assert!(
                written.iter().any(|w| w.0 == *what),
                "error names {what}, not a written view"
            );
            assert!(
                !(by_construction_disjoint && clash.is_none()),
                "refused views disjoint by construction (fused {fused}): {got:?} {views:?} {s:?}"
            );
        }
        (Err(e), _) => panic!("unexpected error {e:?}"),
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut inp = Input::new(bytes);
    let s = shape(&mut inp);
    if inp.chance(20) {
        // An invalid shape is refused before any view is looked at.
        let bad = match inp.int(0, 3) {
            0 => AttnShape { rows: 0, ..s },
            1 => AttnShape { n: 0, ..s },
            2 => AttnShape {
                kv_heads: s.q_heads + 1,
                ..s
            },
            _ => AttnShape { head_dim: 0, ..s },
        };
        let t = RawTensor::dense(4096, &s, s.q_heads);
        assert!(check_tensor_view("q", &bad, &t, bad.q_heads, false).is_err());
        assert!(check_written_disjoint(&bad, &[("dq", t, bad.q_heads)], &[]).is_err());
        return;
    }
    if inp.chance(128) {
        single(&mut inp, &s);
    } else {
        several(&mut inp, &s);
    }
});
