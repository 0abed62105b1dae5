//! Tiled tensor maps: what a TMA load reads and how it lays the box out in shared memory.
//!
//! The limits checked are those the CUDA driver API documents for `cuTensorMapEncodeTiled`
//! (rank 1..=5, a 16-byte aligned global address, extents in 1..=2^32, strides multiples of 16
//! below 2^40, box extents in 1..=256, an inner box extent that is a multiple of 16 bytes), plus
//! one of this crate: a swizzled box's inner extent must equal the swizzle span (32/64/128
//! bytes), the only swizzled boxes the emulator models (the driver also accepts smaller ones).
//! Interleave is none, element strides are 1, out-of-bounds elements read as zeros.

use crate::error::{Error, Result};
use crate::ffi::tma::*;

/// Element type of a tensor map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TmaDtype {
    U8,
    U16,
    U32,
    I32,
    U64,
    I64,
    F16,
    F32,
    F64,
    Bf16,
}

impl TmaDtype {
    /// Bytes per element.
    pub fn bytes(self) -> u32 {
        match self {
            TmaDtype::U8 => 1,
            TmaDtype::U16 | TmaDtype::F16 | TmaDtype::Bf16 => 2,
            TmaDtype::U32 | TmaDtype::I32 | TmaDtype::F32 => 4,
            TmaDtype::U64 | TmaDtype::I64 | TmaDtype::F64 => 8,
        }
    }

    /// The `PA_TMA_DTYPE_*` code (numbered as `CUtensorMapDataType`).
    pub(crate) fn code(self) -> u32 {
        match self {
            TmaDtype::U8 => PA_TMA_DTYPE_U8,
            TmaDtype::U16 => PA_TMA_DTYPE_U16,
            TmaDtype::U32 => PA_TMA_DTYPE_U32,
            TmaDtype::I32 => PA_TMA_DTYPE_I32,
            TmaDtype::U64 => PA_TMA_DTYPE_U64,
            TmaDtype::I64 => PA_TMA_DTYPE_I64,
            TmaDtype::F16 => PA_TMA_DTYPE_F16,
            TmaDtype::F32 => PA_TMA_DTYPE_F32,
            TmaDtype::F64 => PA_TMA_DTYPE_F64,
            TmaDtype::Bf16 => PA_TMA_DTYPE_BF16,
        }
    }
}

/// Shared-memory swizzle of the box (see csrc/pa/sm90.cuh for the pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TmaSwizzle {
    None,
    B32,
    B64,
    B128,
}

impl TmaSwizzle {
    /// Bytes of one swizzled row (the box's inner extent must be this); 0 without swizzle.
    pub fn span_bytes(self) -> u32 {
        match self {
            TmaSwizzle::None => 0,
            TmaSwizzle::B32 => 32,
            TmaSwizzle::B64 => 64,
            TmaSwizzle::B128 => 128,
        }
    }

    /// Alignment the box's shared-memory destination needs (the swizzle pattern's repeat).
    pub fn dst_alignment(self) -> u32 {
        match self {
            TmaSwizzle::None => 128,
            TmaSwizzle::B32 => 256,
            TmaSwizzle::B64 => 512,
            TmaSwizzle::B128 => 1024,
        }
    }

    /// The `PA_TMA_SWIZZLE_*` code (numbered as `CUtensorMapSwizzle`).
    pub(crate) fn code(self) -> u32 {
        match self {
            TmaSwizzle::None => PA_TMA_SWIZZLE_NONE,
            TmaSwizzle::B32 => PA_TMA_SWIZZLE_32B,
            TmaSwizzle::B64 => PA_TMA_SWIZZLE_64B,
            TmaSwizzle::B128 => PA_TMA_SWIZZLE_128B,
        }
    }
}

/// A tiled tensor map. Dimension 0 is the innermost (contiguous) one in every list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMapDesc {
    pub dtype: TmaDtype,
    /// Address of element (0, ..., 0): a device pointer for [`TensorMapDesc::encode_device`], a
    /// host pointer for [`TensorMapDesc::encode_emulator`].
    pub global_address: u64,
    /// Elements per dimension (rank = its length, 1..=5).
    pub dims: Vec<u64>,
    /// Bytes between neighbours in dimensions 1..rank (rank - 1 values; dimension 0 is dense).
    pub strides: Vec<u64>,
    /// Elements per box dimension (the box a load copies), rank values.
    pub box_dims: Vec<u32>,
    pub swizzle: TmaSwizzle,
}

fn bad(field: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::InvalidTensorMap {
        field: field.into(),
        detail: detail.into(),
    }
}

impl TensorMapDesc {
    /// A row-major matrix of `[rows, cols]` elements whose rows are `row_stride` bytes apart,
    /// loaded in boxes of `[box_rows, box_cols]`.
    pub fn matrix(
        dtype: TmaDtype,
        global_address: u64,
        [rows, cols]: [u64; 2],
        row_stride: u64,
        [box_rows, box_cols]: [u32; 2],
        swizzle: TmaSwizzle,
    ) -> Self {
        TensorMapDesc {
            dtype,
            global_address,
            dims: vec![cols, rows],
            strides: vec![row_stride],
            box_dims: vec![box_cols, box_rows],
            swizzle,
        }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// Checks every field against the limits of `cuTensorMapEncodeTiled` and this crate's
    /// emulator; the error names the first bad field.
    pub fn validate(&self) -> Result<()> {
        let rank = self.rank();
        if !(1..=PA_TMA_MAX_RANK as usize).contains(&rank) {
            return Err(bad("rank", format!("{rank} dimensions; TMA takes 1 to 5")));
        }
        if self.strides.len() != rank - 1 {
            return Err(bad(
                "strides",
                format!(
                    "{} strides for rank {rank}; give one per dimension after the first",
                    self.strides.len()
                ),
            ));
        }
        if self.box_dims.len() != rank {
            return Err(bad(
                "box_dims",
                format!("{} box extents for rank {rank}", self.box_dims.len()),
            ));
        }
        if self.global_address == 0 || self.global_address % 16 != 0 {
            return Err(bad(
                "global_address",
                format!(
                    "{:#x} is not a non-null 16-byte aligned address",
                    self.global_address
                ),
            ));
        }
        for (i, &d) in self.dims.iter().enumerate() {
            if d == 0 || d > 1 << 32 {
                return Err(bad(
                    format!("dims[{i}]"),
                    format!("{d} is outside [1, 2^32]"),
                ));
            }
        }
        for (i, &s) in self.strides.iter().enumerate() {
            if s % 16 != 0 || s >= 1 << 40 {
                return Err(bad(
                    format!("strides[{i}]"),
                    format!("{s} bytes is not a multiple of 16 below 2^40"),
                ));
            }
        }
        for (i, &b) in self.box_dims.iter().enumerate() {
            if b == 0 || b > PA_TMA_MAX_BOX {
                return Err(bad(
                    format!("box_dims[{i}]"),
                    format!("{b} is outside [1, 256]"),
                ));
            }
        }
        let inner = self.box_dims[0] as u64 * self.dtype.bytes() as u64;
        if inner % 16 != 0 {
            return Err(bad(
                "box_dims[0]",
                format!("the box's inner extent is {inner} bytes, not a multiple of 16"),
            ));
        }
        let span = self.swizzle.span_bytes() as u64;
        if span != 0 && inner != span {
            return Err(bad(
                "box_dims[0]",
                format!(
                    "a box with swizzle {:?} must be {span} bytes wide in dimension 0, not {inner}",
                    self.swizzle
                ),
            ));
        }
        Ok(())
    }

    /// Bytes one load writes to shared memory (and completes on its mbarrier): the whole box,
    /// out-of-bounds elements included.
    pub fn box_bytes(&self) -> Result<u32> {
        self.validate()?;
        let n: u64 =
            self.box_dims.iter().map(|&b| b as u64).product::<u64>() * self.dtype.bytes() as u64;
        u32::try_from(n).map_err(|_| bad("box_dims", format!("the box has {n} bytes")))
    }

    /// The emulator's encoding (`PaTensorMapEmu`, csrc/pa_tma.h) of this map, for kernels run by
    /// [`crate::emu::launch`]; `global_address` must be a host pointer.
    pub fn encode_emulator(&self) -> Result<PaTensorMap> {
        self.validate()?;
        let rank = self.rank();
        let elem = self.dtype.bytes();
        let mut e = PaTensorMapEmu {
            magic: PA_TMA_EMU_MAGIC,
            dtype: self.dtype.code(),
            elem_bytes: elem,
            rank: rank as u32,
            swizzle: self.swizzle.code(),
            box_dim: [1; 5],
            global_address: self.global_address,
            global_dim: [1; 5],
            global_stride: [0; 5],
        };
        e.global_stride[0] = elem as u64;
        for d in 0..rank {
            e.box_dim[d] = self.box_dims[d];
            e.global_dim[d] = self.dims[d];
            if d > 0 {
                e.global_stride[d] = self.strides[d - 1];
            }
        }
        let mut map = PaTensorMap::default();
        const _: () =
            assert!(std::mem::size_of::<PaTensorMapEmu>() == std::mem::size_of::<PaTensorMap>());
        // SAFETY: both are 128-byte plain C structs of integers; the copy stays inside both.
        unsafe {
            std::ptr::copy_nonoverlapping(
                &e as *const PaTensorMapEmu as *const u8,
                map.opaque.as_mut_ptr() as *mut u8,
                std::mem::size_of::<PaTensorMap>(),
            );
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> TensorMapDesc {
        TensorMapDesc::matrix(
            TmaDtype::Bf16,
            0x1000,
            [128, 64],
            128,
            [64, 64],
            TmaSwizzle::B128,
        )
    }

    fn field_of(d: &TensorMapDesc) -> String {
        match d.validate() {
            Err(Error::InvalidTensorMap { field, .. }) => field,
            other => panic!("expected InvalidTensorMap, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_map_encodes_for_the_emulator() {
        let d = good();
        assert_eq!(d.box_bytes().unwrap(), 64 * 64 * 2);
        let m = d.encode_emulator().unwrap();
        let words: Vec<u32> = m
            .opaque
            .iter()
            .flat_map(|w| [*w as u32, (*w >> 32) as u32])
            .collect();
        assert_eq!(words[0], PA_TMA_EMU_MAGIC);
        assert_eq!(words[1], PA_TMA_DTYPE_BF16);
        assert_eq!(words[2], 2);
        assert_eq!(words[3], 2);
        assert_eq!(words[4], PA_TMA_SWIZZLE_128B);
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut d = good();
        d.dims = vec![];
        assert_eq!(field_of(&d), "rank");
        let mut d = good();
        d.strides = vec![];
        assert_eq!(field_of(&d), "strides");
        let mut d = good();
        d.box_dims = vec![64];
        assert_eq!(field_of(&d), "box_dims");
        let mut d = good();
        d.global_address = 0x1008;
        assert_eq!(field_of(&d), "global_address");
        let mut d = good();
        d.dims[1] = 0;
        assert_eq!(field_of(&d), "dims[1]");
        let mut d = good();
        d.dims[0] = (1 << 32) + 1;
        assert_eq!(field_of(&d), "dims[0]");
        let mut d = good();
        d.strides[0] = 120;
        assert_eq!(field_of(&d), "strides[0]");
        let mut d = good();
        d.strides[0] = 1 << 40;
        assert_eq!(field_of(&d), "strides[0]");
        let mut d = good();
        d.box_dims[1] = 257;
        assert_eq!(field_of(&d), "box_dims[1]");
        let mut d = good();
        d.swizzle = TmaSwizzle::None;
        d.box_dims[0] = 4; // 8 bytes
        assert_eq!(field_of(&d), "box_dims[0]");
        let mut d = good();
        d.box_dims[0] = 32; // 64 bytes under a 128-byte swizzle
        assert_eq!(field_of(&d), "box_dims[0]");
        let mut d = good();
        d.dims = vec![1; 6];
        assert_eq!(field_of(&d), "rank");
    }
}
