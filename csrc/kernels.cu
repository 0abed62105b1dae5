// The translation unit of every shipped kernel, compiled twice: by nvcc into the fatbin, and by
// the host C++ compiler (as C++17) into the emulator library. (The test-only kernels have their
// own unit, csrc/test_kernels.cu, built the same two ways but into a separate test fatbin.) Both expand the kernel list of
// registry.cuh with their own PA_DEFINE_KERNEL (csrc/pa/device.cuh, csrc/pa/host.cuh); the host
// build also emits the registry table Rust reads (csrc/pa_registry.h).
#include "pa/kernel.cuh"
#include "registry.cuh"

PA_KERNEL_LIST(PA_DEFINE_KERNEL)

#if !defined(__CUDACC__)
extern "C" const PaKernelInfo *pa_kernel_registry(uint32_t *count) {
    static const PaKernelInfo table[] = {PA_KERNEL_LIST(PA_REGISTRY_ROW)};
    *count = (uint32_t)(sizeof table / sizeof table[0]);
    return table;
}
#endif
