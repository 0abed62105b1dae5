// The translation unit of the test-only kernels (csrc/test_registry.cuh), compiled like
// csrc/kernels.cu but apart from it: by nvcc into the test fatbin (never shipped: only the crate's
// GPU tests load it) and by the host C++ compiler into the emulator library, whose second registry
// table, `pa_test_kernel_registry` (csrc/pa_registry.h), Rust appends to the shipped one.
#include "pa/kernel.cuh"
#include "test_registry.cuh"

PA_TEST_KERNEL_LIST(PA_DEFINE_KERNEL)

#if !defined(__CUDACC__)
extern "C" const PaKernelInfo *pa_test_kernel_registry(uint32_t *count) {
    static const PaKernelInfo table[] = {PA_TEST_KERNEL_LIST(PA_REGISTRY_ROW)};
    *count = (uint32_t)(sizeof table / sizeof table[0]);
    return table;
}
#endif
