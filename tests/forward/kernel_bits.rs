//! Same bits, whatever the block-list format: a digest of every attention kernel's outputs over a
//! varied case set, compared with the digests committed in `tests/data/kernel_bits.txt`.
//!
//! The file was written on the per-tile block lists, before the lists became runs (issue 18); the
//! kernels walk the same k tiles in the same order with the same classes on either format, so
//! every output bit must stay the same. Both paths (sm80, sm90a), the forward at every registered
//! tile configuration and every backward configuration (dQ, dK, dV), d64 and d128, bf16 and f16,
//! GQA, ragged n, packed documents, prefix + completions, a tree, padding, arbitrary `vis_end`
//! (runs of one tile, classes alternating) and lists that wrap the sm80 and sm90a rings. The
//! schedule varies from kernel to kernel: the bits do not depend on it (the emulated suites check
//! that), so each digest is one more schedule's run.
//!
//! `PREFIX_ATTN_WRITE_KERNEL_BITS=1 cargo test --test forward kernel_bits` rewrites the file (only when a
//! kernel's arithmetic changes on purpose, with the reason in the commit).

use std::fmt::Write as _;

use half::{bf16, f16};
use prefix_attn::attention::configs::{
    backward_family_path, tile_shape, BACKWARD_DKV_FAMILY, BACKWARD_DQ_FAMILY, FORWARD_FAMILY,
};
use prefix_attn::attention::{
    backward_emulated_with, forward_emulated_with, AttnDtype, BackwardChoice, HostBackwardTensors,
    HostTensors, KernelChoice, View,
};
use prefix_attn::emu::Schedule;
use prefix_attn::layout::{RowBuilder, Tree};
use prefix_attn::mask::{TileShape, VisEnd};
use prefix_attn::plan::Plan;
use prefix_attn::registry::{self, Arch, KernelDtype, TileConfig};
use prefix_attn::AttnShape;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/kernel_bits.txt");

/// The inputs' generator: splitmix64, so the inputs never change with a dependency's version.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-amp, amp).
    fn uniform(&mut self, amp: f32) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// FNV-1a, 64 bits, over little-endian words.
struct Digest(u64);

impl Digest {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn u16s(&mut self, v: impl IntoIterator<Item = u16>) {
        for x in v {
            self.bytes(&x.to_le_bytes());
        }
    }
    fn f32s(&mut self, v: &[f32]) {
        for x in v {
            self.bytes(&x.to_bits().to_le_bytes());
        }
    }
}

trait Elem: AttnDtype + prefix_attn::emu::Element + Default {
    fn from_f32(x: f32) -> Self;
    fn bits(self) -> u16;
}

impl Elem for bf16 {
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

impl Elem for f16 {
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

struct Case {
    name: &'static str,
    rows: Vec<Vec<i32>>,
    q_heads: usize,
    kv_heads: usize,
    head_dim: usize,
    f16: bool,
    seed: u64,
}

fn finish(b: RowBuilder, n: usize) -> Vec<i32> {
    b.finish(n).unwrap().vis_end().to_vec()
}

fn packed(docs: &[usize], n: usize) -> Vec<i32> {
    let mut b = RowBuilder::new();
    for &d in docs {
        b.document(d).unwrap();
    }
    finish(b, n)
}

fn padding(n: usize) -> Vec<i32> {
    let mut b = RowBuilder::new();
    b.padding(n).unwrap();
    finish(b, n)
}

fn prefix_groups(groups: &[(usize, &[usize])], n: usize) -> Vec<i32> {
    let mut b = RowBuilder::new();
    for &(prompt, completions) in groups {
        b.prefix_completions(prompt, completions).unwrap();
    }
    finish(b, n)
}

fn tree(n: usize) -> Vec<i32> {
    let mut t = Tree::new(30).unwrap();
    let a = t.add_child(0, 20).unwrap();
    t.add_child(a, 25).unwrap();
    t.add_child(a, 40).unwrap();
    let b = t.add_child(0, 15).unwrap();
    t.add_child(b, 50).unwrap();
    let mut rb = RowBuilder::new();
    rb.tree(t).unwrap();
    finish(rb, n)
}

/// Arbitrary valid `vis_end`: each key seen by a random stretch of the queries after it, some
/// keys by nobody; tiles of every class next to each other in both directions.
fn arbitrary(n: usize, seed: u64) -> Vec<i32> {
    let mut m = Mix(seed);
    (0..n)
        .map(|j| match m.below(4) {
            0 => j,                                // padding: seen by nobody
            1 => n,                                // seen to the end
            _ => j + 1 + m.below((n - j).min(90)), // a stretch
        } as i32)
        .collect()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "causal n=140 (ragged), gqa 2, d128, f16: wraps the sm80 rings and the sm90a dK/dV's",
            rows: vec![packed(&[140], 140)],
            q_heads: 2,
            kv_heads: 1,
            head_dim: 128,
            f16: true,
            seed: 1,
        },
        Case {
            name: "causal n=392 (ragged), gqa 2, d64, bf16: wraps the sm90a K/V rings",
            rows: vec![packed(&[392], 392)],
            q_heads: 2,
            kv_heads: 1,
            head_dim: 64,
            f16: false,
            seed: 2,
        },
        Case {
            name: "packed documents + padding, 2 rows, d128, bf16",
            rows: vec![packed(&[70, 130, 64, 40], 320), packed(&[5, 250, 1], 320)],
            q_heads: 1,
            kv_heads: 1,
            head_dim: 128,
            f16: false,
            seed: 3,
        },
        Case {
            name: "prefix + completions (DPO pairs, GRPO group), 2 rows, gqa 2, d64, f16",
            rows: vec![
                prefix_groups(&[(50, &[70, 20]), (33, &[17, 9])], 256),
                prefix_groups(&[(40, &[30, 50, 17, 44])], 256),
            ],
            q_heads: 2,
            kv_heads: 1,
            head_dim: 64,
            f16: true,
            seed: 4,
        },
        Case {
            name: "tree in DFS order + padding, gqa 2, d128, bf16",
            rows: vec![tree(200)],
            q_heads: 2,
            kv_heads: 1,
            head_dim: 128,
            f16: false,
            seed: 5,
        },
        Case {
            name: "arbitrary vis_end, 2 rows, ragged n=300, gqa 1, d64, bf16",
            rows: vec![arbitrary(300, 61), arbitrary(300, 62)],
            q_heads: 1,
            kv_heads: 1,
            head_dim: 64,
            f16: false,
            seed: 6,
        },
        Case {
            name: "arbitrary vis_end, ragged n=230, gqa 2, d128, f16",
            rows: vec![arbitrary(230, 71)],
            q_heads: 2,
            kv_heads: 1,
            head_dim: 128,
            f16: true,
            seed: 7,
        },
        Case {
            name: "a fully padded row and a short causal row, gqa 1, d64, f16",
            rows: vec![padding(130), packed(&[3], 130)],
            q_heads: 1,
            kv_heads: 1,
            head_dim: 64,
            f16: true,
            seed: 8,
        },
    ]
}

/// Every tile configuration of `family` on `arch` at this head dim (bf16 and f16 are registered
/// alike), ascending.
fn configs(family: &'static str, arch: Arch, head_dim: usize) -> Vec<TileConfig> {
    let mut t: Vec<TileConfig> = registry::family(family)
        .filter(|k| k.arch == arch && k.dtype == KernelDtype::Bf16)
        .filter(|k| k.head_dim as usize == head_dim)
        .filter_map(|k| k.tile)
        .collect();
    t.sort();
    t.dedup();
    t
}

/// Every backward choice of both paths: each dK/dV configuration with the first dQ one, then each
/// further dQ configuration with the first dK/dV one.
fn backward_choices(head_dim: usize) -> Vec<BackwardChoice> {
    let mut out = Vec::new();
    for arch in [Arch::Sm80, Arch::Sm90a] {
        let path = |f| backward_family_path(f, arch, KernelDtype::Bf16, head_dim);
        let dkv = configs(BACKWARD_DKV_FAMILY, path(BACKWARD_DKV_FAMILY), head_dim);
        let dq = configs(BACKWARD_DQ_FAMILY, path(BACKWARD_DQ_FAMILY), head_dim);
        let choice = |dkv_tile, dq_tile| BackwardChoice {
            arch: Some(arch),
            dkv_tile: Some(dkv_tile),
            dq_tile: Some(dq_tile),
        };
        out.extend(dkv.iter().map(|&t| choice(t, dq[0])));
        out.extend(dq.iter().skip(1).map(|&t| choice(dkv[0], t)));
    }
    out
}

fn all_tiles() -> Vec<TileShape> {
    let mut t: Vec<TileShape> = [FORWARD_FAMILY, BACKWARD_DKV_FAMILY, BACKWARD_DQ_FAMILY]
        .into_iter()
        .flat_map(registry::family)
        .filter_map(|k| k.tile)
        .map(tile_shape)
        .collect();
    t.sort_by_key(|t| (t.block_q(), t.block_k()));
    t.dedup();
    t
}

fn schedule(i: usize) -> Schedule {
    match i % 3 {
        0 => Schedule::Ascending,
        1 => Schedule::Descending,
        _ => Schedule::Random { seed: i as u64 },
    }
}

/// `(case, kernel, digest)` lines of one case.
fn digests<T: Elem>(case: &Case, out: &mut Vec<(String, String, u64)>) {
    let shape = AttnShape {
        rows: case.rows.len(),
        n: case.rows[0].len(),
        q_heads: case.q_heads,
        kv_heads: case.kv_heads,
        head_dim: case.head_dim,
    };
    let plan = Plan::with_tiles(VisEnd::from_rows(&case.rows).unwrap(), &all_tiles()).unwrap();
    let mut m = Mix(case.seed);
    let mut vec = |len: usize, amp: f32| -> Vec<T> {
        (0..len).map(|_| T::from_f32(m.uniform(amp))).collect()
    };
    let (q, k, v, d_o) = (
        vec(shape.q_len(), 2.5),
        vec(shape.kv_len(), 1.7),
        vec(shape.kv_len(), 1.0),
        vec(shape.q_len(), 1.0),
    );
    let scale = 1.0 / (case.head_dim as f32).sqrt();
    let (qh, kvh) = (shape.q_heads, shape.kv_heads);
    let forward = |choice: KernelChoice, sched: Schedule| {
        let mut o = vec![T::default(); shape.q_len()];
        let mut lse = vec![0f32; shape.lse_len()];
        forward_emulated_with(
            &plan,
            &shape,
            HostTensors {
                q: View::dense(&q[..], &shape, qh),
                k: View::dense(&k[..], &shape, kvh),
                v: View::dense(&v[..], &shape, kvh),
                o: View::dense(&mut o[..], &shape, qh),
                lse: &mut lse[..],
            },
            scale,
            choice,
            sched,
        )
        .unwrap_or_else(|e| panic!("{}: forward {choice:?}: {e}", case.name));
        (o, lse)
    };
    let mut runs = 0;
    for arch in [Arch::Sm80, Arch::Sm90a] {
        for tile in configs(FORWARD_FAMILY, arch, case.head_dim) {
            let (o, lse) = forward(KernelChoice::exactly(arch, tile), schedule(runs));
            runs += 1;
            let mut d = Digest::new();
            d.u16s(o.iter().map(|x| x.bits()));
            d.f32s(&lse);
            out.push((case.name.into(), format!("forward {arch} {tile}"), d.0));
        }
    }
    let (o, lse) = forward(KernelChoice::default(), Schedule::Ascending);
    for choice in backward_choices(case.head_dim) {
        let mut dq = vec![T::default(); shape.q_len()];
        let mut dk = vec![T::default(); shape.kv_len()];
        let mut dv = vec![T::default(); shape.kv_len()];
        backward_emulated_with(
            &plan,
            &shape,
            HostBackwardTensors {
                q: View::dense(&q[..], &shape, qh),
                k: View::dense(&k[..], &shape, kvh),
                v: View::dense(&v[..], &shape, kvh),
                o: View::dense(&o[..], &shape, qh),
                lse: &lse[..],
                d_o: View::dense(&d_o[..], &shape, qh),
                dq: View::dense(&mut dq[..], &shape, qh),
                dk: View::dense(&mut dk[..], &shape, kvh),
                dv: View::dense(&mut dv[..], &shape, kvh),
            },
            scale,
            choice,
            schedule(runs),
        )
        .unwrap_or_else(|e| panic!("{}: backward {choice:?}: {e}", case.name));
        runs += 1;
        for (what, g) in [("dq", &dq), ("dk", &dk), ("dv", &dv)] {
            let mut d = Digest::new();
            d.u16s(g.iter().map(|x| x.bits()));
            let label = format!(
                "{what} {} dkv {} dq {}",
                choice.arch.unwrap(),
                choice.dkv_tile.unwrap(),
                choice.dq_tile.unwrap()
            );
            out.push((case.name.into(), label, d.0));
        }
    }
}

fn render(lines: &[(String, String, u64)]) -> String {
    let mut s = String::from(
        "# FNV-1a 64 digests of the attention kernels' outputs (tests/forward/kernel_bits.rs): case | \
         kernel | digest\n",
    );
    for (case, kernel, d) in lines {
        writeln!(s, "{case} | {kernel} | {d:016x}").unwrap();
    }
    s
}

#[test]
fn every_kernel_gives_the_committed_bits() {
    let mut lines = Vec::new();
    for case in cases() {
        let t = std::time::Instant::now();
        if case.f16 {
            digests::<f16>(&case, &mut lines);
        } else {
            digests::<bf16>(&case, &mut lines);
        }
        eprintln!("{}: {:.1} s", case.name, t.elapsed().as_secs_f64());
    }
    let got = render(&lines);
    if std::env::var_os("PREFIX_ATTN_WRITE_KERNEL_BITS").is_some() {
        std::fs::write(FILE, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(FILE).expect("tests/data/kernel_bits.txt");
    let differ: Vec<String> = got
        .lines()
        .zip(want.lines())
        .filter(|(g, w)| g != w)
        .map(|(g, w)| format!("  now   {g}\n  was   {w}"))
        .collect();
    assert!(
        differ.is_empty() && got.lines().count() == want.lines().count(),
        "{} of {} digests differ ({} lines now, {} committed):\n{}",
        differ.len(),
        lines.len(),
        got.lines().count(),
        want.lines().count(),
        differ.join("\n")
    );
}
