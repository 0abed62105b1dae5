//! The Hopper primitives on the emulator against their documented semantics, through the
//! probe kernels (csrc/test_kernels/probe_sm90_*.cu), under all three schedules: mbarrier phases and
//! named barriers, TMA boxes of every rank with zero fill and every swizzle, wgmma with every
//! operand source, major-ness, swizzle and several N (exactly the emulator's defined arithmetic,
//! and within the derived bound of the exact product), and the pipeline that combines them.

use crate::emu_support;

use emu_support::sm90::*;
use prefix_attn::emu::probes::{ProbeSm90Pipeline, ProbeSm90Sync, ProbeSm90Tma, ProbeSm90Wgmma};
use prefix_attn::emu::{self, check_schedules, watch, GuardedBuf, Schedule};
use prefix_attn::ffi::emu::*;
use prefix_attn::sm90::PaTensorMap;

const SEED: u64 = 0x5eed_0090;

#[test]
fn mbarriers_and_named_barriers_follow_the_ptx_semantics() {
    let (input, expected) = sync_case(1);
    let inp = GuardedBuf::from_slice(&input);
    let out = GuardedBuf::<u32>::filled(expected.len(), 0xdead_beef);
    let params = PaProbeSm90SyncParams {
        in_: inp.as_ptr(),
        out: out.as_mut_ptr(),
    };
    let dims = ProbeSm90Sync::dims();
    check_schedules(
        ProbeSm90Sync::kernel().unwrap().name(),
        SEED,
        &[watch("out", &out)],
        |s| unsafe { emu::launch(ProbeSm90Sync::kernel().unwrap(), &dims, &params, s) },
    )
    .unwrap();
    let words = PA_PROBE_SYNC_WORDS as usize;
    for t in 0..256 {
        assert_eq!(
            &out.as_slice()[t * words..(t + 1) * words],
            &expected[t * words..(t + 1) * words],
            "thread {t}"
        );
    }
}

fn run_tma(case: &TmaCase) -> (Vec<u32>, Vec<u32>) {
    let tensor = GuardedBuf::from_slice(&case.tensor);
    let mut desc = case.desc.clone();
    desc.global_address = tensor.as_ptr() as u64;
    let box_bytes = desc.box_bytes().unwrap();
    let count = case.coords.len();
    let coords: Vec<i32> = case.coords.iter().flatten().copied().collect();
    let cbuf = GuardedBuf::from_slice(&coords);
    let out = GuardedBuf::<u32>::filled(count * box_bytes as usize / 4, 0x5151_5151);
    let params = PaProbeSm90TmaParams {
        map: desc.encode_emulator().unwrap(),
        coords: cbuf.as_ptr(),
        out: out.as_mut_ptr(),
        box_bytes,
        rank: desc.rank() as u32,
        count: count as u32,
        _pad0: 0,
    };
    let dims = ProbeSm90Tma::dims(count as u32, box_bytes);
    check_schedules(
        ProbeSm90Tma::kernel().unwrap().name(),
        SEED,
        &[watch("out", &out)],
        |s| unsafe { emu::launch(ProbeSm90Tma::kernel().unwrap(), &dims, &params, s) },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let mut expected = vec![];
    for c in &case.coords {
        let bytes = tma_box(&desc, &case.tensor, c);
        expected.extend(
            bytes
                .chunks(4)
                .map(|w| u32::from_le_bytes(w.try_into().unwrap())),
        );
    }
    (out.to_vec(), expected)
}

#[test]
fn tma_boxes_land_swizzled_with_zero_fill_for_every_rank() {
    for case in tma_cases(2) {
        let (got, expected) = run_tma(&case);
        let box_words = expected.len() / case.coords.len();
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(
                g,
                e,
                "{}: box {} ({:?}) word {}",
                case.name,
                i / box_words,
                case.coords[i / box_words],
                i % box_words
            );
        }
    }
}

#[test]
fn a_device_encoded_or_garbage_tensor_map_is_refused() {
    let case = &tma_cases(3)[0];
    let tensor = GuardedBuf::from_slice(&case.tensor);
    let coords = GuardedBuf::from_slice(&[0i32; 5]);
    let out = GuardedBuf::<u32>::filled(4096, 0);
    let params = PaProbeSm90TmaParams {
        map: PaTensorMap::default(),
        coords: coords.as_ptr(),
        out: out.as_mut_ptr(),
        box_bytes: 4096,
        rank: 2,
        count: 1,
        _pad0: 0,
    };
    let _ = &tensor;
    let e = unsafe {
        emu::launch(
            ProbeSm90Tma::kernel().unwrap(),
            &ProbeSm90Tma::dims(1, 4096),
            &params,
            Schedule::Ascending,
        )
    }
    .unwrap_err()
    .to_string();
    assert!(e.contains("not in the emulator's encoding"), "{e}");
}

fn run_wgmma(batch: &WgmmaBatch) -> Vec<f32> {
    let n = batch.cases.len();
    let cases = GuardedBuf::from_slice(&batch.case_bytes());
    let images = GuardedBuf::from_slice(&batch.images);
    let frags = GuardedBuf::from_slice(&batch.a_frags);
    let c = GuardedBuf::from_slice(&batch.c);
    let d = GuardedBuf::<f32>::filled(n * WG_C, f32::NAN);
    let params = PaProbeSm90WgmmaParams {
        cases: cases.as_ptr() as *const PaProbeWgmmaCase,
        images: images.as_ptr(),
        a_frags: frags.as_ptr(),
        c: c.as_ptr(),
        d: d.as_mut_ptr(),
    };
    let dims = ProbeSm90Wgmma::dims(n as u32);
    check_schedules(
        ProbeSm90Wgmma::kernel().unwrap().name(),
        SEED,
        &[watch("d", &d)],
        |s| unsafe { emu::launch(ProbeSm90Wgmma::kernel().unwrap(), &dims, &params, s) },
    )
    .unwrap();
    d.to_vec()
}

#[test]
fn wgmma_reads_every_layout_and_computes_the_defined_arithmetic() {
    for exact_inputs in [false, true] {
        let batch = wgmma_batch(wgmma_specs(), 4 + exact_inputs as u64, exact_inputs);
        let d = run_wgmma(&batch);
        for (ci, s) in batch.specs.iter().enumerate() {
            for m in 0..64 {
                for n in 0..s.n {
                    let i = ci * WG_C + m * 256 + n;
                    let what = format!(
                        "case {ci} (n {}, f16 {}, A regs {}, A {:?}, B {:?}, {} k-steps) d[{m}][{n}]",
                        s.n, s.f16, s.a_regs, s.a, s.b, s.ksteps
                    );
                    assert_eq!(
                        d[i].to_bits(),
                        batch.model[i].to_bits(),
                        "{what}: {} vs model {}",
                        d[i],
                        batch.model[i]
                    );
                    // Each of the k-steps rounds its (exact) f64 sum once to f32: at most half
                    // an ulp of a partial sum bounded by mag, plus the f64 sums' own roundings.
                    let bound = s.ksteps as f64 * (batch.mag[i] * 2f64.powi(-24))
                        + batch.mag[i] * 2f64.powi(-48);
                    let err = (d[i] as f64 - batch.exact[i]).abs();
                    assert!(err <= bound, "{what}: error {err:e} > bound {bound:e}");
                    if exact_inputs {
                        assert_eq!(d[i] as f64, batch.exact[i], "{what}: exact inputs");
                    }
                }
            }
        }
    }
}

#[test]
fn the_tma_wgmma_pipeline_matches_its_model() {
    let pc = pipeline_case(3, 6, false);
    let (q, k, v) = (
        GuardedBuf::from_slice(&pc.q),
        GuardedBuf::from_slice(&pc.k),
        GuardedBuf::from_slice(&pc.v),
    );
    let maps = pipeline_maps(
        q.as_ptr() as u64,
        k.as_ptr() as u64,
        v.as_ptr() as u64,
        pc.tiles,
    );
    let s = GuardedBuf::<f32>::filled(64 * 64, f32::NAN);
    let o = GuardedBuf::<f32>::filled(64 * 64, f32::NAN);
    let params = PaProbeSm90PipelineParams {
        q_map: maps[0].encode_emulator().unwrap(),
        k_map: maps[1].encode_emulator().unwrap(),
        v_map: maps[2].encode_emulator().unwrap(),
        s: s.as_mut_ptr(),
        o: o.as_mut_ptr(),
        tiles: pc.tiles as u32,
        _pad0: 0,
    };
    let dims = ProbeSm90Pipeline::dims();
    check_schedules(
        ProbeSm90Pipeline::kernel().unwrap().name(),
        SEED,
        &[watch("s", &s), watch("o", &o)],
        |sch| unsafe { emu::launch(ProbeSm90Pipeline::kernel().unwrap(), &dims, &params, sch) },
    )
    .unwrap();
    for i in 0..64 * 64 {
        assert_eq!(
            s.as_slice()[i].to_bits(),
            pc.s[i].to_bits(),
            "S[{}][{}]",
            i / 64,
            i % 64
        );
        assert_eq!(
            o.as_slice()[i].to_bits(),
            pc.o[i].to_bits(),
            "O[{}][{}]",
            i / 64,
            i % 64
        );
    }
}
