//! What one `cargo bench --bench sharing` run measures: the mode (GPU or CPU), the model sizes,
//! the sweep, and where results go. Everything is chosen by environment variables, because
//! criterion owns the command line:
//!
//! | variable | effect |
//! |---|---|
//! | `PREFIX_ATTN_BENCH_QUICK=1` | a small sweep that still draws every chart (CI-sized) |
//! | `PREFIX_ATTN_BENCH_PREFIXES=256,1024` | prefix lengths of the ratio sweep |
//! | `PREFIX_ATTN_BENCH_RATIOS=0.5,1,4` | prefix/completion ratios of the ratio sweep |
//! | `PREFIX_ATTN_BENCH_MODEL=hidden,q_heads,kv_heads,head_dim,ffn` | model sizes (GPU default: Mistral-7B, 4096,32,8,128,14336) |
//! | `PREFIX_ATTN_BENCH_TOKENS=16384` | shared tokens per problem (at least one sample) |
//! | `PREFIX_ATTN_BENCH_OUT=dir` | results folder (default `target/prefix-attn-bench/<mode>/`) |
//! | `PREFIX_ATTN_BENCH_PEERS=peers.csv` | PyTorch peers' timings to put in the tables and charts |
//! | `PREFIX_ATTN_BENCH_CASES_ONLY=1` | only write `cases.json` (for the peers script) and exit |
//! | `PREFIX_ATTN_BENCH_CPU=1` | CPU mode even when a GPU is there |
//! | `PREFIX_ATTN_REQUIRE_GPU=1` | no GPU is a failure (exit 2) instead of CPU mode (the GPU check sets it) |
//! | `PREFIX_ATTN_BENCH_LABEL=text` | a label (commit, card) written into the results |
//! | `PREFIX_ATTN_BF16_PEAK_TFLOPS=989` | the card's dense bf16 peak, when the built-in table does not know it |
//! | `PREFIX_ATTN_BENCH_VERBOSE=1` | print every timing round (both times, ratio, CPU wait) |
//! | `PREFIX_ATTN_BENCH_TARGET=0.05` | target relative half-width of a speedup's 95% interval |
//! | `PREFIX_ATTN_BENCH_BUDGET_S=4` | seconds one microbenchmark point may take at most (datasets: 3x) |
//! | `PREFIX_ATTN_BENCH_MAX_WAIT=0.1` | CPU mode: largest share of a round during which the CPU may be contended (run-queue wait, CPU pressure) before the round counts as busy |
//! | `PREFIX_ATTN_BENCH_ONLY=micro` or `datasets` | run only the microbenchmarks or only the dataset tables |
//! | `PREFIX_ATTN_BENCH_DATASET_SAMPLES=64` | synthetic samples drawn per dataset |

use std::path::PathBuf;
use std::time::Duration;

use super::measure::Plan;

/// Where the timings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The crate's kernels and cuBLAS on device 0, bf16, CUDA-event timing.
    Gpu,
    /// The CPU path (prefix_attn::cpu), f32, wall-clock timing.
    Cpu,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Gpu => "gpu",
            Mode::Cpu => "cpu",
        }
    }
}

/// Model sizes: the MLP's `hidden -> ffn -> hidden`, the attention's GQA heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    pub hidden: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
}

/// Mistral-7B, the seed paper's model: hidden 4096, 32 query / 8 kv heads of 128, SwiGLU 14336.
pub const MISTRAL_7B: Model = Model {
    hidden: 4096,
    q_heads: 32,
    kv_heads: 8,
    head_dim: 128,
    ffn: 14336,
};

/// CPU mode's reduced model: Mistral's proportions (GQA 4:1, ffn = 3.5 hidden) at 1/32 of the
/// width and a quarter of the head dim, so that a 2-core machine runs the whole sweep in minutes.
pub const CPU_MODEL: Model = Model {
    hidden: 128,
    q_heads: 4,
    kv_heads: 1,
    head_dim: 32,
    ffn: 448,
};

impl Model {
    pub fn describe(&self) -> String {
        format!(
            "hidden {}, {} q / {} kv heads of {}, SwiGLU {}",
            self.hidden, self.q_heads, self.kv_heads, self.head_dim, self.ffn
        )
    }
}

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub quick: bool,
    pub model: Model,
    pub prefixes: Vec<usize>,
    pub ratios: Vec<f64>,
    /// Group sizes of the k sweep (at one prefix and ratio).
    pub group_ks: Vec<usize>,
    /// Samples per row of the packed case.
    pub packed_per_row: usize,
    /// Shared tokens per problem (at least one sample).
    pub tokens: usize,
    pub out_dir: PathBuf,
    pub peers: Option<PathBuf>,
    pub cases_only: bool,
    pub label: String,
    pub bf16_peak_tflops: Option<f64>,
    pub verbose: bool,
    /// How each point is timed (measure.rs); the dataset points get 3x the budget.
    pub plan: Plan,
    pub micro: bool,
    pub datasets: bool,
    /// The dataset tables' setup (datasets.rs).
    pub data: DataSetup,
}

/// How the dataset tables batch their synthetic samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataSetup {
    /// Samples drawn per dataset (each format processes all of them once per call).
    pub samples: usize,
    /// Lengths of the published profiles are multiplied by this (CPU mode shortens them so
    /// that the reduced model keeps roughly the paper's share of attention in the step).
    pub length_scale: f64,
    /// DPO samples per micro-batch without packing (rows padded to the batch's longest).
    pub batch: usize,
    /// Most tokens per row with packing (a row ends where its last item ends: no padding).
    pub pack_len: usize,
    /// Longest sample (prompt + both completions) after scaling; longer draws are clipped.
    pub max_len: usize,
}

/// The sweep, scaled for each mode.
const GPU_PREFIXES: [usize; 6] = [256, 512, 1024, 2048, 4096, 8192];
const GPU_QUICK_PREFIXES: [usize; 3] = [512, 2048, 8192];
const CPU_PREFIXES: [usize; 3] = [32, 64, 128];
const CPU_QUICK_PREFIXES: [usize; 2] = [32, 128];
const RATIOS: [f64; 6] = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
const QUICK_RATIOS: [f64; 3] = [0.5, 2.0, 16.0];

impl Config {
    /// The configuration for `mode` from the environment (`env` looks a variable up; tests pass
    /// their own). Errors name the variable and what is wrong with it.
    pub fn new(mode: Mode, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let flag = |name: &str| matches!(env(name).as_deref(), Some("1" | "true" | "yes"));
        let quick = flag("PREFIX_ATTN_BENCH_QUICK");
        let (prefixes, model, tokens): (&[usize], Model, usize) = match (mode, quick) {
            (Mode::Gpu, false) => (&GPU_PREFIXES, MISTRAL_7B, 16 * 1024),
            (Mode::Gpu, true) => (&GPU_QUICK_PREFIXES, MISTRAL_7B, 16 * 1024),
            (Mode::Cpu, false) => (&CPU_PREFIXES, CPU_MODEL, 512),
            (Mode::Cpu, true) => (&CPU_QUICK_PREFIXES, CPU_MODEL, 256),
        };
        let ratios: &[f64] = if quick { &QUICK_RATIOS } else { &RATIOS };
        // CPU samples last 20 ms (thread start-up and timer jitter stay below 1% of them); a
        // GPU sample 10 ms of device time. The budget bounds a noisy point's cost.
        let plan = match mode {
            Mode::Cpu => Plan {
                min_rounds: 8,
                max_rounds: 200,
                target: 0.05,
                budget: Duration::from_secs(if quick { 3 } else { 5 }),
                min_sample: Duration::from_millis(20),
                max_wait: Some(0.10),
            },
            Mode::Gpu => Plan {
                min_rounds: 8,
                max_rounds: 200,
                target: 0.05,
                budget: Duration::from_secs(if quick { 2 } else { 4 }),
                min_sample: Duration::from_millis(10),
                max_wait: None,
            },
        };
        let data = match mode {
            // A CPU step costs about 1000x a GPU's: an eighth of the published lengths and
            // tens of samples keep a dataset point within seconds.
            Mode::Cpu => DataSetup {
                samples: if quick { 8 } else { 24 },
                length_scale: 0.125,
                batch: 4,
                pack_len: 512,
                max_len: 512,
            },
            Mode::Gpu => DataSetup {
                samples: if quick { 64 } else { 128 },
                length_scale: 1.0,
                batch: 8,
                pack_len: 8192,
                max_len: 4096,
            },
        };
        let only = env("PREFIX_ATTN_BENCH_ONLY");
        let mut c = Config {
            mode,
            quick,
            model,
            prefixes: prefixes.to_vec(),
            ratios: ratios.to_vec(),
            group_ks: if quick { vec![2, 8] } else { vec![2, 4, 8] },
            packed_per_row: 4,
            tokens,
            out_dir: default_out_dir(mode, env),
            peers: env("PREFIX_ATTN_BENCH_PEERS").map(PathBuf::from),
            cases_only: flag("PREFIX_ATTN_BENCH_CASES_ONLY"),
            label: env("PREFIX_ATTN_BENCH_LABEL").unwrap_or_default(),
            bf16_peak_tflops: None,
            verbose: flag("PREFIX_ATTN_BENCH_VERBOSE"),
            plan,
            micro: only.as_deref() != Some("datasets"),
            datasets: only.as_deref() != Some("micro"),
            data,
        };
        if let Some(v) = only.as_deref() {
            if !matches!(v, "micro" | "datasets") {
                return Err(format!(
                    "PREFIX_ATTN_BENCH_ONLY={v}: want `micro` or `datasets`"
                ));
            }
        }
        if let Some(v) = env("PREFIX_ATTN_BENCH_TARGET") {
            c.plan.target = one("PREFIX_ATTN_BENCH_TARGET", &v)?;
        }
        if let Some(v) = env("PREFIX_ATTN_BENCH_BUDGET_S") {
            let s: f64 = one("PREFIX_ATTN_BENCH_BUDGET_S", &v)?;
            if !(s.is_finite() && s > 0.0) {
                return Err(format!(
                    "PREFIX_ATTN_BENCH_BUDGET_S={v}: want a positive number"
                ));
            }
            c.plan.budget = Duration::from_secs_f64(s);
        }
        if let Some(v) = env("PREFIX_ATTN_BENCH_MAX_WAIT") {
            c.plan.max_wait = Some(one("PREFIX_ATTN_BENCH_MAX_WAIT", &v)?);
        }
        if let Some(v) = env("PREFIX_ATTN_BENCH_DATASET_SAMPLES") {
            c.data.samples = one("PREFIX_ATTN_BENCH_DATASET_SAMPLES", &v)?;
        }
        if let Some(v) = env("PREFIX_ATTN_BENCH_PREFIXES") {
            c.prefixes = list("PREFIX_ATTN_BENCH_PREFIXES", &v)?;
        }
        if let Some(v) = env("PREFIX_ATTN_BENCH_RATIOS") {
            c.ratios = list("PREFIX_ATTN_BENCH_RATIOS", &v)?;
        }
        if let Some(v) = env("PREFIX_ATTN_BENCH_TOKENS") {
            c.tokens = one("PREFIX_ATTN_BENCH_TOKENS", &v)?;
        }
        if let Some(v) = env("PREFIX_ATTN_BENCH_MODEL") {
            let d: Vec<usize> = list("PREFIX_ATTN_BENCH_MODEL", &v)?;
            let [hidden, q_heads, kv_heads, head_dim, ffn] = d[..] else {
                return Err(format!(
                    "PREFIX_ATTN_BENCH_MODEL={v}: want hidden,q_heads,kv_heads,head_dim,ffn"
                ));
            };
            c.model = Model {
                hidden,
                q_heads,
                kv_heads,
                head_dim,
                ffn,
            };
        }
        if let Some(v) = env("PREFIX_ATTN_BF16_PEAK_TFLOPS") {
            c.bf16_peak_tflops = Some(one("PREFIX_ATTN_BF16_PEAK_TFLOPS", &v)?);
        }
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        let m = &self.model;
        if m.hidden == 0 || m.ffn == 0 || m.head_dim == 0 || m.head_dim % 2 != 0 {
            return Err(format!(
                "model {m:?}: sizes must be positive, head_dim even"
            ));
        }
        if m.kv_heads == 0 || m.q_heads % m.kv_heads != 0 {
            return Err(format!(
                "model {m:?}: q_heads must be a multiple of kv_heads"
            ));
        }
        if self.prefixes.is_empty() || self.ratios.is_empty() {
            return Err("the sweep needs at least one prefix length and one ratio".into());
        }
        for &r in &self.ratios {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!("ratio {r} is not a positive number"));
            }
        }
        if self.prefixes.contains(&0) || self.tokens == 0 {
            return Err("prefix lengths and the token budget must be positive".into());
        }
        if !(self.plan.target.is_finite() && self.plan.target > 0.0) {
            return Err(format!(
                "target {} is not a positive number",
                self.plan.target
            ));
        }
        if self.data.samples == 0 {
            return Err("a dataset needs at least one sample".into());
        }
        Ok(())
    }
}

/// `PREFIX_ATTN_BENCH_OUT`, else `<target dir>/prefix-attn-bench/<mode>` (the target dir from
/// `CARGO_TARGET_DIR`, else this crate's `target/`).
fn default_out_dir(mode: Mode, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = env("PREFIX_ATTN_BENCH_OUT") {
        return PathBuf::from(dir);
    }
    let target = env("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("prefix-attn-bench").join(mode.name())
}

fn one<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{name}={v}: `{}` is not a number", v.trim()))
}

fn list<T: std::str::FromStr>(name: &str, v: &str) -> Result<Vec<T>, String> {
    v.split(',').map(|x| one(name, x)).collect()
}
