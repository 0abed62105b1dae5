//! The kernel registry: every kernel of the fatbin with its launch facts, as the host library
//! exports them (csrc/pa_registry.h, generated from the one kernel list in csrc/registry.cuh).
//! Rust never spells a kernel's name, block size, shared memory or tile shape itself: it looks the
//! kernel up here. The same table serves both executors: [`crate::cuda`] loads the fatbin symbol
//! `name`, [`crate::emu`] calls the host build through the entry it carries.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::ffi::registry::{
    pa_kernel_registry, pa_test_kernel_registry, PaEmuEntry, PaKernelInfo, PA_ARCH_SM80,
    PA_ARCH_SM90A, PA_DTYPE_BF16, PA_DTYPE_F16, PA_DTYPE_F32, PA_DTYPE_NONE,
};

/// The code path a kernel belongs to: what a device must be to run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// mma.sync, cp.async, ldmatrix: every card from compute capability 8.0 on.
    Sm80,
    /// wgmma, TMA, setmaxnreg: compute capability 9.0 exactly (SASS for `sm_90a`).
    Sm90a,
}

impl Arch {
    /// Whether a device of compute capability `major.minor` runs this path's SASS.
    pub fn runs_on(self, major: u32, minor: u32) -> bool {
        match self {
            Arch::Sm80 => major >= 8,
            Arch::Sm90a => (major, minor) == (9, 0),
        }
    }

    /// The best path for a device: sm90a on compute capability 9.0, sm80 on every other card
    /// from 8.0 on, None below.
    pub fn best_for(major: u32, minor: u32) -> Option<Arch> {
        [Arch::Sm90a, Arch::Sm80]
            .into_iter()
            .find(|a| a.runs_on(major, minor))
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::Sm80 => "sm80",
            Arch::Sm90a => "sm90a",
        })
    }
}

/// The element type a kernel is instantiated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelDtype {
    /// Not typed by an element (fill, probes).
    None,
    Bf16,
    F16,
    F32,
}

/// A kernel's tile configuration (attention kernels): the plan builds its block lists at
/// `block_q x block_k`; `warps` each own `block_q / warps` query rows; K/V go through `stages`
/// shared-memory stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileConfig {
    pub block_q: u32,
    pub block_k: u32,
    pub warps: u32,
    pub stages: u32,
}

impl TileConfig {
    pub const fn new(block_q: u32, block_k: u32, warps: u32, stages: u32) -> Self {
        Self {
            block_q,
            block_k,
            warps,
            stages,
        }
    }
}

impl std::fmt::Display for TileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "q{}k{}w{}s{}",
            self.block_q, self.block_k, self.warps, self.stages
        )
    }
}

/// One registered kernel.
#[derive(Debug, Clone, Copy)]
pub struct KernelInfo {
    /// The fatbin symbol (and the name errors use).
    pub name: &'static str,
    /// Kernels of one family share a parameter struct and a launch preparation.
    pub family: &'static str,
    /// The C name of its parameter struct, and the struct's size.
    pub params: &'static str,
    pub params_bytes: usize,
    pub arch: Arch,
    /// Block size the kernel is written for (attention kernels: exactly; others: at most).
    pub threads: u32,
    /// Dynamic shared memory per CTA in bytes (0: the launch decides).
    pub smem_bytes: u32,
    pub dtype: KernelDtype,
    /// Head dim (attention kernels; 0 otherwise).
    pub head_dim: u32,
    /// Tile configuration (attention kernels).
    pub tile: Option<TileConfig>,
    /// A test-only kernel (csrc/test_registry.cuh: probes, planted bugs): in the emulator and in
    /// the test fatbin the crate's GPU tests load ([`crate::cuda::Gpu::load_test`]), not in the
    /// fatbin a [`crate::cuda::Gpu`] loads.
    pub test_only: bool,
    pub(crate) emu: unsafe extern "C" fn(
        *const crate::ffi::emu::PaEmuLaunch,
        *const core::ffi::c_void,
        *mut crate::ffi::emu::PaEmuReport,
    ) -> core::ffi::c_int,
}

fn c_str(p: *const core::ffi::c_char) -> &'static str {
    // SAFETY: the registry's strings are string literals of the host library: NUL-terminated and
    // alive for the whole program.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .expect("registry strings are ASCII")
}

fn convert(k: &PaKernelInfo, test_only: bool) -> KernelInfo {
    let arch = match k.arch {
        PA_ARCH_SM80 => Arch::Sm80,
        PA_ARCH_SM90A => Arch::Sm90a,
        other => panic!("registry: unknown arch code {other}"),
    };
    let dtype = match k.dtype {
        PA_DTYPE_NONE => KernelDtype::None,
        PA_DTYPE_BF16 => KernelDtype::Bf16,
        PA_DTYPE_F16 => KernelDtype::F16,
        PA_DTYPE_F32 => KernelDtype::F32,
        other => panic!("registry: unknown dtype code {other}"),
    };
    let tile = (k.block_q > 0).then_some(TileConfig::new(k.block_q, k.block_k, k.warps, k.stages));
    let emu: PaEmuEntry = k.emu;
    KernelInfo {
        name: c_str(k.name),
        family: c_str(k.family),
        params: c_str(k.params),
        params_bytes: k.params_bytes as usize,
        arch,
        threads: k.threads,
        smem_bytes: k.smem_bytes,
        dtype,
        head_dim: k.head_dim,
        tile,
        test_only,
        emu: emu.expect("registry rows carry an emulator entry"),
    }
}

/// Every registered kernel, in registry order: the shipped kernels (csrc/registry.cuh), then the
/// test-only ones (csrc/test_registry.cuh, [`KernelInfo::test_only`]).
pub fn all() -> &'static [KernelInfo] {
    static TABLE: OnceLock<Vec<KernelInfo>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let table = |f: unsafe extern "C" fn(*mut u32) -> *const PaKernelInfo, test_only| {
            let mut count = 0u32;
            // SAFETY: returns a pointer to a static array of `count` rows in the host library.
            let rows = unsafe { f(&mut count) };
            // SAFETY: as above; the rows live for the whole program.
            let rows = unsafe { std::slice::from_raw_parts(rows, count as usize) };
            rows.iter()
                .map(move |k| convert(k, test_only))
                .collect::<Vec<_>>()
        };
        let mut all = table(pa_kernel_registry, false);
        all.extend(table(pa_test_kernel_registry, true));
        all
    })
}

/// The kernels of the shipped fatbin (csrc/registry.cuh), in registry order.
pub fn shipped() -> impl Iterator<Item = &'static KernelInfo> {
    all().iter().filter(|k| !k.test_only)
}

/// The kernel exported as `name`.
pub fn by_name(name: &str) -> Result<&'static KernelInfo> {
    all()
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| Error::InvalidArgument {
            what: "kernel",
            detail: format!(
                "no kernel named {name:?} in the registry (csrc/registry.cuh, csrc/test_registry.cuh)"
            ),
        })
}

/// The kernels of one family.
pub fn family(family: &'static str) -> impl Iterator<Item = &'static KernelInfo> {
    all().iter().filter(move |k| k.family == family)
}

/// The block size every kernel of `family` is written for (the instantiations of one family
/// template share it), or an error when the family has no kernel or its kernels disagree.
pub fn family_threads(family: &'static str) -> Result<u32> {
    let mut threads = self::family(family).map(|k| k.threads);
    let first = threads.next().ok_or_else(|| Error::InvalidArgument {
        what: "kernel",
        detail: format!("no {family} kernel in the registry"),
    })?;
    if threads.any(|t| t != first) {
        return Err(Error::InvalidArgument {
            what: "kernel",
            detail: format!("the {family} kernels differ in block size"),
        });
    }
    Ok(first)
}

/// A kernel parameter struct of csrc/pa_params.h or csrc/pa_test_params.h.
///
/// # Safety
/// `NAME` must be the struct's C name, so that a kernel registered with that parameter struct is
/// launched with exactly this Rust type (its bindgen mirror).
pub unsafe trait KernelParams: Copy {
    const NAME: &'static str;
}

macro_rules! kernel_params {
    ($($ty:ident),* $(,)?) => {
        $(
            // SAFETY: the name is the struct's own (bindgen keeps C names).
            unsafe impl KernelParams for $ty {
                const NAME: &'static str = stringify!($ty);
            }
        )*
    };
}

use crate::ffi::emu::{
    PaEmuGemmTileParams, PaEmuPlantedParams, PaEmuPlantedSm90Params, PaProbeConvertParams,
    PaProbeCpAsyncParams, PaProbeLdmatrixParams, PaProbeLog2Params, PaProbeMmaParams,
    PaProbeShflParams, PaProbeSm90PipelineParams, PaProbeSm90SyncParams, PaProbeSm90TmaParams,
    PaProbeSm90WgmmaParams, PaProbeTileParams,
};
use crate::ffi::params::{
    PaAttnBwdDkvParams, PaAttnBwdDkvSm90Params, PaAttnBwdDqParams, PaAttnBwdDqSm90Params,
    PaAttnBwdPreParams, PaAttnFwdParams, PaAttnFwdSm90Params, PaFillParams, PaLogProbGatherParams,
    PaRotaryParams, PaSegmentSumParams, PaSwigluParams,
};

kernel_params!(
    PaFillParams,
    PaAttnFwdParams,
    PaAttnFwdSm90Params,
    PaAttnBwdPreParams,
    PaAttnBwdDkvParams,
    PaAttnBwdDqParams,
    PaAttnBwdDqSm90Params,
    PaAttnBwdDkvSm90Params,
    PaLogProbGatherParams,
    PaSegmentSumParams,
    PaSwigluParams,
    PaRotaryParams,
    PaEmuGemmTileParams,
    PaEmuPlantedParams,
    PaProbeShflParams,
    PaProbeLdmatrixParams,
    PaProbeMmaParams,
    PaProbeCpAsyncParams,
    PaProbeConvertParams,
    PaProbeTileParams,
    PaProbeLog2Params,
    PaProbeSm90SyncParams,
    PaProbeSm90TmaParams,
    PaProbeSm90WgmmaParams,
    PaProbeSm90PipelineParams,
    PaEmuPlantedSm90Params,
);

/// A registered kernel whose parameter struct is `P` (checked when the handle is made), which is
/// what both executors launch.
pub struct KernelRef<P> {
    info: &'static KernelInfo,
    _params: PhantomData<fn(P)>,
}

impl<P> Clone for KernelRef<P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P> Copy for KernelRef<P> {}

impl<P> std::fmt::Debug for KernelRef<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KernelRef").field(&self.info.name).finish()
    }
}

impl<P: KernelParams> KernelRef<P> {
    /// A handle on `info`, if the kernel takes `P`.
    pub fn new(info: &'static KernelInfo) -> Result<Self> {
        if info.params != P::NAME || info.params_bytes != std::mem::size_of::<P>() {
            return Err(Error::InvalidArgument {
                what: "kernel parameters",
                detail: format!(
                    "{} takes {} ({} bytes), not {} ({} bytes)",
                    info.name,
                    info.params,
                    info.params_bytes,
                    P::NAME,
                    std::mem::size_of::<P>()
                ),
            });
        }
        Ok(Self {
            info,
            _params: PhantomData,
        })
    }

    /// The kernel exported as `name`, if it takes `P`.
    pub fn named(name: &str) -> Result<Self> {
        Self::new(by_name(name)?)
    }

    /// The kernel of `family` instantiated for `dtype` (families with one kernel per element
    /// type: the log-prob gather, SwiGLU, rotary, probes).
    pub fn of_family(family: &str, dtype: KernelDtype) -> Result<Self> {
        let info = all()
            .iter()
            .find(|k| k.family == family && k.dtype == dtype)
            .ok_or_else(|| Error::InvalidArgument {
                what: "kernel",
                detail: format!("no {family} kernel for {dtype:?} in the registry"),
            })?;
        Self::new(info)
    }

    /// The one kernel that takes `P` (for parameter structs that belong to a single kernel: the
    /// fill, the segment sum, test and probe kernels), so that Rust never spells its name.
    pub fn unique() -> Result<Self> {
        let mut found = all().iter().filter(|k| k.params == P::NAME);
        match (found.next(), found.next()) {
            (Some(k), None) => Self::new(k),
            (None, _) => Err(Error::InvalidArgument {
                what: "kernel",
                detail: format!("no registered kernel takes {}", P::NAME),
            }),
            (Some(a), Some(b)) => Err(Error::InvalidArgument {
                what: "kernel",
                detail: format!(
                    "{} and {} both take {}: look one up by name",
                    a.name,
                    b.name,
                    P::NAME
                ),
            }),
        }
    }
}

impl<P> KernelRef<P> {
    pub fn info(&self) -> &'static KernelInfo {
        self.info
    }

    pub fn name(&self) -> &'static str {
        self.info.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_rows_consistent() {
        let all = all();
        assert!(!all.is_empty());
        for (i, k) in all.iter().enumerate() {
            assert!(
                all[..i].iter().all(|o| o.name != k.name),
                "{} registered twice",
                k.name
            );
            assert!(k.threads > 0 && k.threads <= 1024, "{}", k.name);
            if let Some(t) = k.tile {
                assert_eq!(t.warps * 32, k.threads, "{}", k.name);
                assert!(k.head_dim > 0 && k.smem_bytes > 0, "{}", k.name);
            }
        }
    }

    #[test]
    fn params_are_checked() {
        assert!(KernelRef::<PaFillParams>::named("pa_fill_u32").is_ok());
        assert_eq!(
            KernelRef::<PaFillParams>::unique().unwrap().name(),
            "pa_fill_u32"
        );
        assert!(KernelRef::<PaAttnFwdParams>::unique().is_err());
        let err = KernelRef::<PaAttnFwdParams>::named("pa_fill_u32").unwrap_err();
        assert!(err.to_string().contains("PaFillParams"), "{err}");
        assert!(KernelRef::<PaFillParams>::named("no_such_kernel").is_err());
    }

    #[test]
    fn paths_follow_compute_capability() {
        assert_eq!(Arch::best_for(9, 0), Some(Arch::Sm90a));
        assert_eq!(Arch::best_for(8, 0), Some(Arch::Sm80));
        assert_eq!(Arch::best_for(8, 9), Some(Arch::Sm80));
        assert_eq!(Arch::best_for(10, 0), Some(Arch::Sm80));
        assert_eq!(Arch::best_for(7, 5), None);
    }
}
