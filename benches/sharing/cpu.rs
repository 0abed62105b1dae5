//! CPU mode: the crate's CPU path (prefix_attn::cpu: multi-threaded f32, block-skipping
//! attention walking the same block lists as the kernels) on seeded random inputs, timed by the
//! wall clock. Weights are made once per run; inputs and block lists once per problem, before
//! timing.

use std::time::{Duration, Instant};

use prefix_attn::cpu::{AttentionLayer, CpuAttention, LayerDims, SwigluMlp};
use prefix_attn::rotary::{RotaryTable, DEFAULT_THETA};
use prefix_attn::AttnShape;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cases::{Op, Problem};
use super::config::Model;
use super::cpu_step::Block;
use super::driver::{Runner, Timed};

pub struct Cpu {
    model: Model,
    mlp: SwigluMlp,
    layer: AttentionLayer,
    block: Block,
}

impl Cpu {
    pub fn new(model: Model) -> Result<Self, String> {
        let dims = LayerDims {
            hidden: model.hidden,
            q_heads: model.q_heads,
            kv_heads: model.kv_heads,
            head_dim: model.head_dim,
        };
        Ok(Self {
            model,
            mlp: SwigluMlp::random(model.hidden, model.ffn, 1).map_err(|e| e.to_string())?,
            layer: AttentionLayer::random(dims, 2).map_err(|e| e.to_string())?,
            block: Block::new(model),
        })
    }

    fn shape(&self, p: &Problem) -> AttnShape {
        AttnShape {
            rows: p.rows(),
            n: p.n(),
            q_heads: self.model.q_heads,
            kv_heads: self.model.kv_heads,
            head_dim: self.model.head_dim,
        }
    }
}

pub fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Times `calls` runs of `f`; a failed call is a bug in the bench (inputs were checked when
/// prepared), so it stops the run with its message.
fn timed<'a>(mut f: impl FnMut() -> prefix_attn::Result<()> + 'a) -> Timed<'a> {
    Box::new(move |calls| {
        let t0 = Instant::now();
        for _ in 0..calls {
            f().unwrap_or_else(|e| panic!("CPU path failed on checked inputs: {e}"));
        }
        t0.elapsed()
    })
}

impl Runner for Cpu {
    fn step<'a>(&'a self, batches: &'a [Problem]) -> Result<Timed<'a>, String> {
        self.block.prepare(batches)
    }

    fn prepare<'a>(&'a self, op: Op, p: &'a Problem) -> Result<Timed<'a>, String> {
        let err = |e: prefix_attn::Error| e.to_string();
        let m = &self.model;
        let tokens = p.tokens();
        let shape = self.shape(p);
        let attention =
            || CpuAttention::new(p.vis_end.clone(), CpuAttention::default_tile()).map_err(err);
        let scale = 1.0 / (m.head_dim as f32).sqrt();
        let run: Timed<'a> = match op {
            Op::Mlp => {
                let x = random(tokens * m.hidden, 3);
                timed(move || self.mlp.forward(&x).map(drop))
            }
            Op::AttnFwd | Op::AttnFwdBwd => {
                let a = attention()?;
                let (q, k, v) = (
                    random(shape.q_len(), 4),
                    random(shape.kv_len(), 5),
                    random(shape.kv_len(), 6),
                );
                let d_o = random(shape.q_len(), 7);
                let backward = op == Op::AttnFwdBwd;
                timed(move || {
                    let out = a.forward(&shape, &q, &k, &v, scale)?;
                    if backward {
                        a.backward(&shape, &q, &k, &v, &out, &d_o, scale)?;
                    }
                    Ok(())
                })
            }
            Op::Layer => {
                let a = attention()?;
                let table = RotaryTable::for_positions(m.head_dim, &p.positions, DEFAULT_THETA)
                    .map_err(err)?;
                let x = random(tokens * m.hidden, 8);
                timed(move || self.layer.forward(&a, &x, &p.positions, &table).map(drop))
            }
        };
        // One untimed call: first-touch page faults and thread start-up stay out of the samples.
        let mut run = run;
        let _: Duration = run(1);
        Ok(run)
    }
}
