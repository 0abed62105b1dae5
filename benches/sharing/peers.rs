//! Timings of PyTorch peers on the same problems, from scripts/gpucheck/peers_sweep.py, read so
//! that they land in the same tables and charts as ours.
//!
//! CSV schema (one header line, comma-separated, no quoting; extra columns are ignored):
//!
//! | column | meaning |
//! |---|---|
//! | `peer` | `sdpa_cudnn`, `sdpa_flash` (SDPA restricted to one backend), `flex` (FlexAttention), `torch` (PyTorch matmuls, cuBLAS) |
//! | `op` | `attn_fwd`, `attn_fwd_bwd` or `mlp` (the bench's op names) |
//! | `case` | the point id of `cases.json` (`p1024_r4`, `k8_p1024_r4`, ...) |
//! | `format` | `paired` or `shared` |
//! | `ms` | median milliseconds per call; anything that is not a number (`failed`) means no timing |
//! | `note` | free text (for example `kv heads repeated`), may be empty |

use std::path::Path;

/// One row of the peers CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerTiming {
    pub peer: String,
    pub op: String,
    pub case: String,
    pub format: String,
    pub ms: Option<f64>,
    pub note: String,
}

/// The readable name of a peer id.
pub fn peer_title(peer: &str) -> &str {
    match peer {
        "sdpa_cudnn" => "cuDNN (SDPA)",
        "sdpa_flash" => "FA2 (SDPA flash)",
        "flex" => "FlexAttention",
        "torch" => "PyTorch/cuBLAS",
        other => other,
    }
}

/// Parses the CSV text; errors name the line.
pub fn parse(text: &str) -> Result<Vec<PeerTiming>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("peers CSV: no `{name}` column in the header `{header}`"))
    };
    let (peer, op, case, format, ms) = (
        col("peer")?,
        col("op")?,
        col("case")?,
        col("format")?,
        col("ms")?,
    );
    let note = cols.iter().position(|c| *c == "note");
    let mut out = Vec::new();
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |c: usize| {
            f.get(c)
                .copied()
                .ok_or_else(|| format!("peers CSV line {}: {} fields, want more", i + 1, f.len()))
        };
        out.push(PeerTiming {
            peer: get(peer)?.to_string(),
            op: get(op)?.to_string(),
            case: get(case)?.to_string(),
            format: get(format)?.to_string(),
            ms: get(ms)?
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0),
            note: note
                .and_then(|c| f.get(c))
                .map_or(String::new(), |s| s.to_string()),
        });
    }
    Ok(out)
}

/// Reads the file at `path` (no file: no peers, said on stderr by the caller).
pub fn load(path: &Path) -> Result<Vec<PeerTiming>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text)
}

/// The timing of `peer` for (op, case, format), when there is one.
pub fn find(peers: &[PeerTiming], peer: &str, op: &str, case: &str, format: &str) -> Option<f64> {
    peers
        .iter()
        .find(|p| p.peer == peer && p.op == op && p.case == case && p.format == format)
        .and_then(|p| p.ms)
}

/// The paired-format baseline for an op: cuDNN when it ran, else FA2, else PyTorch (MLP).
pub fn paired_baseline(peers: &[PeerTiming], op: &str, case: &str) -> Option<(&'static str, f64)> {
    ["sdpa_cudnn", "sdpa_flash", "torch"]
        .into_iter()
        .find_map(|p| find(peers, p, op, case, "paired").map(|ms| (p, ms)))
}
