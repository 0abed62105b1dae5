// The name of each parameter struct, as the registry reports it (PaKernelInfo::params) and Rust
// checks it before a launch: a kernel can only be launched with the struct it was written for.
// One line per struct of csrc/pa_params.h and csrc/pa_test_params.h that a kernel takes.
#pragma once

#include "../pa_params.h"
#include "../pa_test_params.h"

namespace pa {

template <class P>
struct ParamsName;

#define PA_PARAMS_NAME(T)                          \
    template <>                                    \
    struct ParamsName<T> {                         \
        static constexpr const char *value = #T;   \
    };

PA_PARAMS_NAME(PaFillParams)
PA_PARAMS_NAME(PaAttnFwdParams)
PA_PARAMS_NAME(PaAttnFwdSm90Params)
PA_PARAMS_NAME(PaAttnBwdPreParams)
PA_PARAMS_NAME(PaAttnBwdDkvParams)
PA_PARAMS_NAME(PaAttnBwdDqParams)
PA_PARAMS_NAME(PaAttnBwdDqSm90Params)
PA_PARAMS_NAME(PaAttnBwdDkvSm90Params)
PA_PARAMS_NAME(PaLogProbGatherParams)
PA_PARAMS_NAME(PaSegmentSumParams)
PA_PARAMS_NAME(PaSwigluParams)
PA_PARAMS_NAME(PaRotaryParams)
PA_PARAMS_NAME(PaEmuGemmTileParams)
PA_PARAMS_NAME(PaEmuPlantedParams)
PA_PARAMS_NAME(PaProbeShflParams)
PA_PARAMS_NAME(PaProbeLdmatrixParams)
PA_PARAMS_NAME(PaProbeMmaParams)
PA_PARAMS_NAME(PaProbeCpAsyncParams)
PA_PARAMS_NAME(PaProbeConvertParams)
PA_PARAMS_NAME(PaProbeTileParams)
PA_PARAMS_NAME(PaProbeLog2Params)
PA_PARAMS_NAME(PaProbeSm90SyncParams)
PA_PARAMS_NAME(PaProbeSm90TmaParams)
PA_PARAMS_NAME(PaProbeSm90WgmmaParams)
PA_PARAMS_NAME(PaProbeSm90PipelineParams)
PA_PARAMS_NAME(PaEmuPlantedSm90Params)

#undef PA_PARAMS_NAME

}  // namespace pa
