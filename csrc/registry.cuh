// THE kernel list: one line per kernel of the fatbin users ship, X(exported name, kernel struct).
// csrc/kernels.cu expands it into the fatbin's extern "C" symbols (nvcc) and into the emulator's
// entries and the registry table (host build, csrc/pa_registry.h), from which Rust takes every
// kernel's name, launch shape, shared memory and tile configuration. Adding a kernel = its file + a
// line here (docs/adding-a-kernel.md). Kernels that exist only for the tests (probes, planted bugs)
// are listed apart, in csrc/test_registry.cuh: they are built into the emulator and a test-only
// fatbin, never into this one.
#pragma once

#include "attn/bwd_dkv_sm80.cuh"
#include "attn/bwd_dkv_sm90.cuh"
#include "attn/bwd_dq_sm80.cuh"
#include "attn/bwd_dq_sm90.cuh"
#include "attn/bwd_preprocess.cuh"
#include "attn/fwd_sm80.cuh"
#include "attn/fwd_sm90.cuh"
#include "kernels/fill.cuh"
#include "kernels/logprob_gather.cuh"
#include "kernels/rotary.cuh"
#include "kernels/swiglu.cuh"

// The forward's sm80 tile configurations (block_q x block_k, warps, stages) for one dtype and head
// dim. Which one runs is chosen in Rust (src/attention/configs.rs); the GPU check sweeps them all.
// 128 x 64 with 4 warps (32 query rows per warp) is registered at head dim 64 only: at 128 its O
// accumulator alone is 128 of a lane's 255 registers, and ptxas spills it on sm_90a.
#define PA_FWD_SM80(X, T, tn, D, BQ, BK, W, S) \
    X(pa_attn_fwd_sm80_##tn##_d##D##_q##BQ##k##BK##w##W##s##S, pa::attn::FwdSm80<pa::attn::TileConfig<T, D, BQ, BK, W, S>>)
#define PA_ATTN_FWD_SM80_CONFIGS(X, T, tn)        \
    PA_FWD_SM80(X, T, tn, 64, 64, 64, 4, 2)        \
    PA_FWD_SM80(X, T, tn, 64, 128, 64, 4, 2)       \
    PA_FWD_SM80(X, T, tn, 64, 128, 64, 8, 2)       \
    PA_FWD_SM80(X, T, tn, 64, 128, 128, 8, 2)      \
    PA_FWD_SM80(X, T, tn, 128, 64, 64, 4, 2)       \
    PA_FWD_SM80(X, T, tn, 128, 128, 64, 8, 2)      \
    PA_FWD_SM80(X, T, tn, 128, 128, 128, 8, 2)

// The forward's sm90a configurations (block_q x block_k, stages; 64 query rows per consumer
// warpgroup, plus the producer warpgroup): chosen in Rust like the sm80 ones, run only on compute
// capability 9.0. Why these tiles: docs/forward.md ("The sm90a path").
#define PA_FWD_SM90(X, T, tn, D, BQ, BK, S) \
    X(pa_attn_fwd_sm90_##tn##_d##D##_q##BQ##k##BK##s##S, pa::attn::FwdSm90<pa::attn::Sm90TileConfig<T, D, BQ, BK, S>>)
#define PA_ATTN_FWD_SM90_CONFIGS(X, T, tn)    \
    PA_FWD_SM90(X, T, tn, 64, 128, 128, 2)     \
    PA_FWD_SM90(X, T, tn, 64, 192, 128, 2)     \
    PA_FWD_SM90(X, T, tn, 128, 128, 128, 2)

// The backward's kernels for one dtype and head dim: the preprocess (D and lse_log2), the dK/dV
// tile configurations (warps own keys: block_k / warps each) and the dQ configuration (warps own
// queries). Chosen in Rust from attention::configs::BACKWARD_PICKS.
#define PA_ATTN_BWD_SM80_KERNELS(X, T, tn, D)                                                      \
    X(pa_attn_bwd_pre_##tn##_d##D, pa::attn::BwdPreprocess<T, D>)                                  \
    X(pa_attn_bwd_dkv_sm80_##tn##_d##D##_q64k64w4s2, pa::attn::BwdDkvSm80<pa::attn::KeyTileConfig<T, D, 64, 64, 4, 2>>) \
    X(pa_attn_bwd_dkv_sm80_##tn##_d##D##_q64k128w8s2, pa::attn::BwdDkvSm80<pa::attn::KeyTileConfig<T, D, 64, 128, 8, 2>>) \
    X(pa_attn_bwd_dq_sm80_##tn##_d##D##_q64k64w4s2, pa::attn::BwdDqSm80<pa::attn::TileConfig<T, D, 64, 64, 4, 2>>)

// The backward's sm90a dQ kernel for one dtype and head dim (128 queries: two consumer warpgroups,
// by 128 keys, 2 stages; docs/backward.md, "On Hopper"). The same family as the sm80 dQ; no
// BACKWARD_PICKS row names it yet, so it runs only when a BackwardChoice asks for the sm90a path.
#define PA_ATTN_BWD_DQ_SM90(X, T, tn, D)                                                         \
    X(pa_attn_bwd_dq_sm90_##tn##_d##D##_q128k128s2,                                              \
      pa::attn::BwdDqSm90<pa::attn::Sm90DqTileConfig<T, D, 128, 128, 2>>)

// The backward's sm90a dK/dV kernel for one dtype and head dim (128 keys: two consumer warpgroups
// of 64, q tiles of 64 through a 2-stage ring; docs/backward.md, "On Hopper"). The same family as
// the sm80 dK/dV, chosen only like the sm90a dQ (BACKWARD_CHOSEN_ONLY_PICKS).
#define PA_ATTN_BWD_DKV_SM90(X, T, tn, D)                                                        \
    X(pa_attn_bwd_dkv_sm90_##tn##_d##D##_q64k128s2,                                              \
      pa::attn::BwdDkvSm90<pa::attn::Sm90DkvTileConfig<T, D, 64, 128, 2>>)

#define PA_KERNEL_LIST(X)                                                   \
    X(pa_fill_u32, pa::kernels::FillU32)                                    \
    PA_ATTN_FWD_SM80_CONFIGS(X, pa::bf16, bf16)                             \
    PA_ATTN_FWD_SM80_CONFIGS(X, pa::f16, f16)                               \
    PA_ATTN_FWD_SM90_CONFIGS(X, pa::bf16, bf16)                             \
    PA_ATTN_FWD_SM90_CONFIGS(X, pa::f16, f16)                               \
    PA_ATTN_BWD_SM80_KERNELS(X, pa::bf16, bf16, 64)                         \
    PA_ATTN_BWD_SM80_KERNELS(X, pa::bf16, bf16, 128)                        \
    PA_ATTN_BWD_SM80_KERNELS(X, pa::f16, f16, 64)                           \
    PA_ATTN_BWD_SM80_KERNELS(X, pa::f16, f16, 128)                          \
    PA_ATTN_BWD_DQ_SM90(X, pa::bf16, bf16, 64)                              \
    PA_ATTN_BWD_DQ_SM90(X, pa::bf16, bf16, 128)                             \
    PA_ATTN_BWD_DQ_SM90(X, pa::f16, f16, 64)                                \
    PA_ATTN_BWD_DQ_SM90(X, pa::f16, f16, 128)                               \
    PA_ATTN_BWD_DKV_SM90(X, pa::bf16, bf16, 64)                             \
    PA_ATTN_BWD_DKV_SM90(X, pa::bf16, bf16, 128)                            \
    PA_ATTN_BWD_DKV_SM90(X, pa::f16, f16, 64)                               \
    PA_ATTN_BWD_DKV_SM90(X, pa::f16, f16, 128)                              \
    X(pa_logprob_gather_bf16, pa_logprob::Gather<pa::bf16>)                 \
    X(pa_logprob_gather_f16, pa_logprob::Gather<pa::f16>)                   \
    X(pa_logprob_gather_f32, pa_logprob::Gather<float>)                     \
    X(pa_segment_sum_f32, pa_logprob::SegmentSum)                           \
    X(pa_swiglu_bf16, pa_swiglu::Swiglu<pa::bf16>)                          \
    X(pa_swiglu_f16, pa_swiglu::Swiglu<pa::f16>)                            \
    X(pa_rotary_bf16, pa_rotary::Rotary<pa::bf16>)                          \
    X(pa_rotary_f16, pa_rotary::Rotary<pa::f16>)
