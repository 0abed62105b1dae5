//! What a built row costs on the host, and the largest row a builder accepts.
//!
//! A [`super::RowBuilder`] keeps, per token, its `vis_end` and position id (an `i32` each) and a
//! [`super::TokenInfo`] (item and role): [`ROW_HOST_BYTES_PER_TOKEN`] bytes, 40 on 64-bit hosts,
//! plus up to as much again while its vectors grow. Sizes come from single integers
//! (`document(len)`, `padding(len)`, `finish(n)`, `BatchOptions::max_len` with `round_to`), so
//! a typo could ask for tens of gigabytes; builders refuse anything over [`MAX_ROW_TOKENS`] with
//! [`crate::Error::RowTooLong`] before allocating.
//!
//! Why 2^24 tokens (16,777,216): the kernels index tokens in int32, so no row can pass 2^31 - 1
//! (86 GB of metadata at 40 bytes); 2^24 is sixteen times the longest contexts trained today
//! (about 2^20), costs at most 640 MiB of host metadata, and is already past what a device can
//! run: Q alone of such a row is 128 GiB at 32 query heads of 128 in bf16, before K, V, O and
//! every other activation of the layer.

use std::mem::size_of;

use super::row::TokenInfo;

/// Host bytes a built row keeps per token: `vis_end` and position (`i32` each) and its
/// [`TokenInfo`].
pub const ROW_HOST_BYTES_PER_TOKEN: usize = 2 * size_of::<i32>() + size_of::<TokenInfo>();

/// The most tokens one built row may have (see the module docs for why).
pub const MAX_ROW_TOKENS: usize = 1 << 24;
