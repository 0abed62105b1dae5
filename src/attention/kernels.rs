//! The forward instantiations as [`Kernel`]s (fatbin symbol + emulator entry), and a dispatch
//! from the runtime [`ForwardKernel`] to the marker type.

use crate::ffi::emu;
use crate::ffi::params::PaAttnFwdParams;
use crate::launch::{EmuEntry, Kernel};

macro_rules! forward_kernels {
    ($($marker:ident => $name:literal, $emu:path;)*) => {
        $(
            #[doc = concat!("`", $name, "`.")]
            pub struct $marker;

            impl Kernel for $marker {
                type Params = PaAttnFwdParams;
                const NAME: &'static str = $name;
                const EMU: EmuEntry<Self::Params> = $emu;
            }
        )*
    };
}

forward_kernels! {
    AttnFwdBf16D64 => "pa_attn_fwd_bf16_d64", emu::pa_attn_fwd_bf16_d64_emu;
    AttnFwdBf16D128 => "pa_attn_fwd_bf16_d128", emu::pa_attn_fwd_bf16_d128_emu;
    AttnFwdF16D64 => "pa_attn_fwd_f16_d64", emu::pa_attn_fwd_f16_d64_emu;
    AttnFwdF16D128 => "pa_attn_fwd_f16_d128", emu::pa_attn_fwd_f16_d128_emu;
}

/// Evaluates `$body` with `$k` bound to the marker type of `$kernel` (a [`ForwardKernel`]).
///
/// [`ForwardKernel`]: super::ForwardKernel
macro_rules! with_forward_kernel {
    ($kernel:expr, $k:ident => $body:expr) => {{
        use $crate::attention::kernels::*;
        match $kernel {
            $crate::attention::ForwardKernel::Bf16D64 => {
                type $k = AttnFwdBf16D64;
                $body
            }
            $crate::attention::ForwardKernel::Bf16D128 => {
                type $k = AttnFwdBf16D128;
                $body
            }
            $crate::attention::ForwardKernel::F16D64 => {
                type $k = AttnFwdF16D64;
                $body
            }
            $crate::attention::ForwardKernel::F16D128 => {
                type $k = AttnFwdF16D128;
                $body
            }
        }
    }};
}
pub(crate) use with_forward_kernel;

#[cfg(test)]
mod tests {
    use super::super::ForwardKernel;

    #[test]
    fn markers_and_runtime_names_agree() {
        for k in ForwardKernel::ALL {
            let name = with_forward_kernel!(k, K => <K as Kernel>::NAME);
            assert_eq!(name, k.name());
        }
    }
}
