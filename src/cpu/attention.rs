//! Tiled, block-skipping attention forward in f32 on the CPU, walking the crate's block lists
//! ([`BlockMask`]) exactly as the GPU kernel does: per (row, q tile, q head) one unit of work
//! that visits only the non-empty k tiles of its q tile, FULL tiles without any per-element
//! mask, PARTIAL tiles with the rule `j <= i && i < vis_end[j]`, EMPTY tiles never. Online
//! softmax (running max and sum per query), so no score matrix larger than one tile exists.
//!
//! Layouts are the dense ones of [`AttnShape`]: Q and O `[rows, n, q_heads, d]`, K and V
//! `[rows, n, kv_heads, d]`, LSE `[rows, q_heads, n]` (natural log; `-inf` and O = 0 for a
//! query that sees no key, as everywhere in the crate).

use super::gemm::{axpy, dot};
use super::pool::{available_threads, par_units};
use crate::error::{Error, Result};
use crate::mask::{visible, BlockMask, TileClass, TileShape, VisEnd};
use crate::shape::AttnShape;

/// A batch's `vis_end` and its block lists at one tile shape, ready for the CPU path (the CPU
/// counterpart of [`crate::plan::Plan`]).
#[derive(Debug, Clone)]
pub struct CpuAttention {
    vis_end: VisEnd,
    mask: BlockMask,
    threads: usize,
}

/// Output of [`CpuAttention::forward`].
#[derive(Debug, Clone, PartialEq)]
pub struct AttnOutput {
    /// `[rows, n, q_heads, d]`.
    pub o: Vec<f32>,
    /// `[rows, q_heads, n]`, natural log.
    pub lse: Vec<f32>,
}

impl CpuAttention {
    /// The tile the CPU path uses by default: the sm80 forward's pick for head dim 128
    /// (attention::configs), so both skip the same tiles.
    pub fn default_tile() -> TileShape {
        let pick = crate::attention::configs::FORWARD_PICKS
            .iter()
            .find(|p| p.arch == crate::registry::Arch::Sm80 && p.head_dim == 128)
            .expect("the sm80 path has a pick for head dim 128");
        crate::attention::configs::tile_shape(pick.prefer[0])
    }

    /// Builds the block lists of `vis_end` at `tile`; uses every available thread.
    pub fn new(vis_end: VisEnd, tile: TileShape) -> Result<Self> {
        let mask = BlockMask::build(&vis_end, tile)?;
        Ok(Self {
            vis_end,
            mask,
            threads: available_threads(),
        })
    }

    /// Runs on at most `threads` threads (at least one).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    pub fn vis_end(&self) -> &VisEnd {
        &self.vis_end
    }

    /// The block lists every call walks.
    pub fn mask(&self) -> &BlockMask {
        &self.mask
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// `O = softmax(scale * Q K^T) V` and LSE under the batch's mask.
    ///
    /// Errors: the shape's own checks, a shape whose rows or `n` differ from the batch's, a
    /// slice of the wrong length (`LengthMismatch` naming it), a scale that is not finite and
    /// positive.
    pub fn forward(
        &self,
        shape: &AttnShape,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        scale: f32,
    ) -> Result<AttnOutput> {
        self.check(shape, scale)?;
        check_len("q", q, shape.q_len())?;
        check_len("k", k, shape.kv_len())?;
        check_len("v", v, shape.kv_len())?;
        let units = self.mask.rows() * self.mask.q_tiles() * shape.q_heads;
        let tiles = par_units(units, self.threads, |u| {
            let (r, qt, h) = self.q_unit(u, shape);
            self.forward_tile(shape, Qkv { q, k, v }, r, qt, h, scale)
        });
        let mut out = AttnOutput {
            o: vec![0.0; shape.q_len()],
            lse: vec![f32::NEG_INFINITY; shape.lse_len()],
        };
        let (n, d, hq) = (shape.n, shape.head_dim, shape.q_heads);
        for (u, (o_tile, lse_tile)) in tiles.into_iter().enumerate() {
            let (r, qt, h) = self.q_unit(u, shape);
            let q0 = qt * self.mask.tile().block_q();
            for (ii, o_i) in o_tile.chunks_exact(d).enumerate() {
                let at = ((r * n + q0 + ii) * hq + h) * d;
                out.o[at..at + d].copy_from_slice(o_i);
            }
            let at = (r * hq + h) * n + q0;
            out.lse[at..at + lse_tile.len()].copy_from_slice(&lse_tile);
        }
        Ok(out)
    }

    /// Checks what every call needs: the shape, that it matches the batch, and the scale.
    pub(crate) fn check(&self, shape: &AttnShape, scale: f32) -> Result<()> {
        shape.validate()?;
        for (what, want, got) in [
            (
                "shape.n (the batch's row length)",
                self.vis_end.n(),
                shape.n,
            ),
            (
                "shape.rows (the batch's rows)",
                self.vis_end.rows(),
                shape.rows,
            ),
        ] {
            if want != got {
                return Err(Error::LengthMismatch {
                    what,
                    expected: want,
                    got,
                });
            }
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::InvalidArgument {
                what: "scale",
                detail: format!("{scale} is not a finite positive number"),
            });
        }
        Ok(())
    }

    /// Unit `u` of a q-major pass: (row, q tile, q head), heaviest q tiles first so that the
    /// longest units start early and short ones fill the tail.
    pub(crate) fn q_unit(&self, u: usize, shape: &AttnShape) -> (usize, usize, usize) {
        let (rank, h) = (u / shape.q_heads, u % shape.q_heads);
        let slot = self.mask.heaviest_first()[rank] as usize;
        (slot / self.mask.q_tiles(), slot % self.mask.q_tiles(), h)
    }

    /// One (row, q tile, q head): its O rows `[nq, d]` and LSE `[nq]`.
    fn forward_tile(
        &self,
        shape: &AttnShape,
        x: Qkv<'_>,
        r: usize,
        qt: usize,
        h: usize,
        scale: f32,
    ) -> (Vec<f32>, Vec<f32>) {
        let t = Tile::new(self, shape, r, qt);
        let d = shape.head_dim;
        let g = h / shape.group();
        let q_rows: Vec<&[f32]> = (t.q0..t.q1).map(|i| x.q_row(shape, r, i, h)).collect();
        let nq = q_rows.len();
        let mut max = vec![f32::NEG_INFINITY; nq];
        let mut sum = vec![0f32; nq];
        let mut acc = vec![0f32; nq * d];
        let mut s = vec![0f32; self.mask.tile().block_k()];
        let row_vis = self.vis_end.row(r);
        for (kt, class) in self.mask.q_list(r, qt) {
            let (k0, k1) = t.keys(kt);
            for (ii, q_i) in q_rows.iter().enumerate() {
                let i = t.q0 + ii;
                let s = &mut s[..k1 - k0];
                for (jj, s_ij) in s.iter_mut().enumerate() {
                    let j = k0 + jj;
                    *s_ij = if class == TileClass::Partial && !visible(row_vis, i, j) {
                        f32::NEG_INFINITY
                    } else {
                        scale * dot(q_i, x.kv_row(x.k, shape, r, j, g))
                    };
                }
                let tile_max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if tile_max == f32::NEG_INFINITY {
                    continue; // this query sees no key of this tile
                }
                let m_new = max[ii].max(tile_max);
                let acc_i = &mut acc[ii * d..(ii + 1) * d];
                if m_new > max[ii] {
                    // exp(-inf) = 0 clears the empty state.
                    let alpha = (max[ii] - m_new).exp();
                    sum[ii] *= alpha;
                    acc_i.iter_mut().for_each(|a| *a *= alpha);
                    max[ii] = m_new;
                }
                for (jj, &s_ij) in s.iter().enumerate() {
                    if s_ij == f32::NEG_INFINITY {
                        continue;
                    }
                    let p = (s_ij - m_new).exp();
                    sum[ii] += p;
                    axpy(acc_i, p, x.kv_row(x.v, shape, r, k0 + jj, g));
                }
            }
        }
        let mut lse = vec![f32::NEG_INFINITY; nq];
        for ii in 0..nq {
            if sum[ii] > 0.0 {
                let inv = 1.0 / sum[ii];
                acc[ii * d..(ii + 1) * d].iter_mut().for_each(|a| *a *= inv);
                lse[ii] = max[ii] + sum[ii].ln();
            }
        }
        (acc, lse)
    }
}

/// Q, K and V of one call (dense layouts of the shape).
#[derive(Clone, Copy)]
pub(crate) struct Qkv<'a> {
    pub(crate) q: &'a [f32],
    pub(crate) k: &'a [f32],
    pub(crate) v: &'a [f32],
}

impl<'a> Qkv<'a> {
    /// Query `i` of head `h` in row `r` (also used for O and dO, which share Q's layout).
    pub(crate) fn q_row(&self, shape: &AttnShape, r: usize, i: usize, h: usize) -> &'a [f32] {
        head_row(self.q, shape, shape.q_heads, r, i, h)
    }

    /// Key/value `j` of kv head `g` in row `r` of `kv` (K or V).
    pub(crate) fn kv_row(
        &self,
        kv: &'a [f32],
        shape: &AttnShape,
        r: usize,
        j: usize,
        g: usize,
    ) -> &'a [f32] {
        head_row(kv, shape, shape.kv_heads, r, j, g)
    }
}

/// Row `(r, i, h)` of a dense `[rows, n, heads, d]` tensor.
pub(crate) fn head_row<'a>(
    x: &'a [f32],
    shape: &AttnShape,
    heads: usize,
    r: usize,
    i: usize,
    h: usize,
) -> &'a [f32] {
    let d = shape.head_dim;
    let at = ((r * shape.n + i) * heads + h) * d;
    &x[at..at + d]
}

/// Token ranges of one q tile and of the k tiles it meets (clipped to the row).
pub(crate) struct Tile {
    pub(crate) q0: usize,
    pub(crate) q1: usize,
    n: usize,
    block_k: usize,
}

impl Tile {
    pub(crate) fn new(a: &CpuAttention, shape: &AttnShape, _r: usize, qt: usize) -> Self {
        let bq = a.mask.tile().block_q();
        Self {
            q0: qt * bq,
            q1: ((qt + 1) * bq).min(shape.n),
            n: shape.n,
            block_k: a.mask.tile().block_k(),
        }
    }

    pub(crate) fn keys(&self, kt: usize) -> (usize, usize) {
        (kt * self.block_k, ((kt + 1) * self.block_k).min(self.n))
    }
}

pub(crate) fn check_len(what: &'static str, x: &[f32], expected: usize) -> Result<()> {
    if x.len() == expected {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what,
            expected,
            got: x.len(),
        })
    }
}
