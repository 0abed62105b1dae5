//! Plan building (block lists) must be cheap enough to do once per batch on the host: target a
//! 64k-token row at 128x128 in under 1 ms.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prefix_attn::layout::RowBuilder;
use prefix_attn::mask::{BlockMask, TileShape, VisEnd};

/// One row of `n` tokens packed with prefix + k completion samples (prompt `p` tokens,
/// completions `c` tokens each) until the next would not fit; padding after them. Laid out by
/// the crate's row builder, like every mask of the crate.
fn prefix_shared_row(n: usize, p: usize, c: usize, k: usize) -> Vec<i32> {
    let mut row = RowBuilder::new();
    while row.len() + p + k * c <= n {
        row.prefix_completions(p, &vec![c; k]).unwrap();
    }
    row.finish(n).unwrap().vis_end().to_vec()
}

fn bench_plan(c: &mut Criterion) {
    let tile = TileShape::new(128, 128).unwrap();
    let mut g = c.benchmark_group("block_mask_build_128x128");
    for &n in &[8192usize, 65536] {
        let causal = VisEnd::new(n, vec![n as i32; n]).unwrap();
        let shared = VisEnd::new(n, prefix_shared_row(n, 1024, 512, 4)).unwrap();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("causal", n), &causal, |b, ve| {
            b.iter(|| BlockMask::build(ve, tile).unwrap())
        });
        g.bench_with_input(
            BenchmarkId::new("prefix1024_k4x512", n),
            &shared,
            |b, ve| b.iter(|| BlockMask::build(ve, tile).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
