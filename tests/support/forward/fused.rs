//! The fused layout both forward tests (emulator and GPU) use to exercise strided views: Q, K and
//! V as slices of one `[rows, n, q_heads + 2 kv_heads, d]` buffer, and O inside a buffer with one
//! unused head slot per token (the gap must keep its poison).

use prefix_attn::attention::Strides;

use super::check::Inputs;

pub struct Fused<T> {
    /// `[rows, n, q_heads + 2 kv_heads, d]`: per token, its q heads, then k heads, then v heads.
    pub data: Vec<T>,
    /// Strides of the Q, K and V views inside `data`.
    pub strides: Strides,
    /// Element offsets of the first Q, K and V element in `data`.
    pub q_at: usize,
    pub k_at: usize,
    pub v_at: usize,
    /// O: `o_token` elements per token, the first `q_heads * d` of them written.
    pub o_token: usize,
    pub o_strides: Strides,
}

impl<T: Copy> Fused<T> {
    pub fn new(inp: &Inputs<T>) -> Self {
        let sh = inp.shape;
        let d = sh.head_dim;
        let (qw, kw) = (sh.q_heads * d, sh.kv_heads * d);
        let token = qw + 2 * kw;
        let mut data = Vec::with_capacity(sh.rows * sh.n * token);
        for t in 0..sh.rows * sh.n {
            data.extend_from_slice(&inp.q[t * qw..(t + 1) * qw]);
            data.extend_from_slice(&inp.k[t * kw..(t + 1) * kw]);
            data.extend_from_slice(&inp.v[t * kw..(t + 1) * kw]);
        }
        let o_token = qw + d;
        Self {
            data,
            strides: Strides {
                row: sh.n * token,
                token,
                head: d,
            },
            q_at: 0,
            k_at: qw,
            v_at: qw + kw,
            o_token,
            o_strides: Strides {
                row: sh.n * o_token,
                token: o_token,
                head: d,
            },
        }
    }

    /// Elements of the O buffer.
    pub fn o_len(&self, inp: &Inputs<T>) -> usize {
        inp.shape.rows * inp.shape.n * self.o_token
    }
}
