//! The sweep under criterion, for either mode: one criterion group per op (`mlp`, `attn_fwd`,
//! `attn_fwd_bwd`, `layer`), one benchmark per (point, format) named `<point>/<format>`
//! (`mlp/p1024_r4/shared`), a progress line per point, and every timing recorded for the closing
//! tables. Criterion's throughput ("elem/s") is FLOP/s of the op (visible pairs only for
//! attention).

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};

use super::cases::{Format, Op, Point, Problem};
use super::config::Config;
use super::results::Results;

/// Runs `calls` calls of one prepared (op, problem) and returns the time they took (device time
/// on a GPU).
pub type Timed<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// What a mode provides: inputs and buffers for one (op, problem), allocated and warmed up
/// before timing; `Err(reason)` when the mode cannot run the op (the tables say why).
pub trait Runner {
    fn prepare<'a>(&'a self, op: Op, problem: &'a Problem) -> Result<Timed<'a>, String>;
}

pub fn run(
    c: &mut Criterion,
    cfg: &Config,
    cases: &[(Point, Problem, Problem)],
    runner: &dyn Runner,
    results: &Results,
) {
    let total = Op::ALL.len() * cases.len();
    let mut done = 0;
    for op in Op::ALL {
        let mut g = c.benchmark_group(op.name());
        // One timed call can take a good fraction of a second on the CPU: flat sampling runs
        // every sample with the same number of calls instead of a growing ramp.
        g.sampling_mode(SamplingMode::Flat);
        for (point, shared, paired) in cases {
            done += 1;
            let ideal = op.ideal(shared, paired, &cfg.model);
            println!(
                "[{done}/{total}] {} {}: shared {} x {}, paired {} x {} tokens; ideal {ideal:.2}x",
                op.name(),
                point.id(),
                shared.rows(),
                shared.n(),
                paired.rows(),
                paired.n()
            );
            let mut times = Vec::new();
            for (format, problem) in [(Format::Shared, shared), (Format::Paired, paired)] {
                let slot = results.add(op, point, format, problem, &cfg.model, ideal);
                match runner.prepare(op, problem) {
                    Ok(timed) => {
                        bench(
                            &mut g, op, point, format, problem, cfg, timed, results, slot,
                        );
                        times.push(results.median_s(slot));
                    }
                    Err(why) => {
                        println!("      {}: not timed: {why}", format.name());
                        results.skip(slot, &why);
                    }
                }
            }
            if let [Some(s), Some(p)] = times[..] {
                println!(
                    "      measured {:.2}x = {:.0}% of ideal",
                    p / s,
                    100.0 * p / s / ideal
                );
            }
        }
        g.finish();
    }
}

#[allow(clippy::too_many_arguments)]
fn bench(
    g: &mut BenchmarkGroup<'_, WallTime>,
    op: Op,
    point: &Point,
    format: Format,
    problem: &Problem,
    cfg: &Config,
    mut timed: Timed<'_>,
    results: &Results,
    slot: super::results::Slot,
) {
    g.throughput(Throughput::Elements(op.flops(problem, &cfg.model) as u64));
    g.bench_function(BenchmarkId::new(point.id(), format.name()), |b| {
        b.iter_custom(|calls| {
            let t = timed(calls);
            results.record(slot, calls, t);
            t
        })
    });
}
