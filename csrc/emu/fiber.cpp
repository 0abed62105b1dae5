// Fiber context switch and fiber stacks (see fiber.h).
#include "fiber.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

namespace pa {
namespace emu {

#if defined(__x86_64__)

// pa_emu_switch(from, to): System V x86-64. Pushes the callee-saved registers and the FP control
// state on the current stack, stores the stack pointer in *from, loads *to's and pops in reverse.
// pa_emu_fiber_start: first "return" of a new fiber; calls r13(r12) with a 16-byte aligned stack.
asm(R"(
    .text
    .p2align 4
    .globl pa_emu_switch
    .hidden pa_emu_switch
    .type pa_emu_switch,@function
pa_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size pa_emu_switch, .-pa_emu_switch

    .p2align 4
    .globl pa_emu_fiber_start
    .hidden pa_emu_fiber_start
    .type pa_emu_fiber_start,@function
pa_emu_fiber_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size pa_emu_fiber_start, .-pa_emu_fiber_start
)");

extern "C" void pa_emu_switch(void **from_sp, void **to_sp);
extern "C" void pa_emu_fiber_start();

void fiber_switch(FiberContext *from, FiberContext *to) { pa_emu_switch(&from->sp, &to->sp); }

void fiber_prepare(FiberContext *ctx, unsigned char *stack, size_t size, void (*entry)(void *),
                   void *arg) {
    // Frame popped by the first switch into this fiber, lowest address first:
    //   [mxcsr:4 | x87 cw:2 | pad:2] r15 r14 r13=entry r12=arg rbx rbp ret=pa_emu_fiber_start
    // After `ret`, rsp is 16-byte aligned, so the `call` in pa_emu_fiber_start enters `entry`
    // with the alignment the ABI expects.
    uintptr_t top = reinterpret_cast<uintptr_t>(stack + size) & ~static_cast<uintptr_t>(15);
    uintptr_t after_ret = top - 16;
    uint64_t *frame = reinterpret_cast<uint64_t *>(after_ret - 64);
    const uint32_t mxcsr = 0x1f80;  // all exceptions masked, round to nearest, no FTZ/DAZ
    const uint16_t fpucw = 0x037f;  // x87 default
    uint64_t control = 0;
    memcpy(&control, &mxcsr, 4);
    memcpy(reinterpret_cast<unsigned char *>(&control) + 4, &fpucw, 2);
    frame[0] = control;
    frame[1] = 0;                                      // r15
    frame[2] = 0;                                      // r14
    frame[3] = reinterpret_cast<uint64_t>(entry);      // r13
    frame[4] = reinterpret_cast<uint64_t>(arg);        // r12
    frame[5] = 0;                                      // rbx
    frame[6] = 0;                                      // rbp
    frame[7] = reinterpret_cast<uint64_t>(&pa_emu_fiber_start);
    ctx->sp = frame;
}

#else  // ucontext fallback

namespace {
// makecontext passes int arguments only: hand the entry over through the thread's last prepare.
struct Start {
    void (*entry)(void *);
    void *arg;
};
void ucontext_trampoline(unsigned hi, unsigned lo) {
    auto *s = reinterpret_cast<Start *>((static_cast<uintptr_t>(hi) << 32) | lo);
    s->entry(s->arg);
}
}  // namespace

void fiber_switch(FiberContext *from, FiberContext *to) { swapcontext(&from->uc, &to->uc); }

void fiber_prepare(FiberContext *ctx, unsigned char *stack, size_t size, void (*entry)(void *),
                   void *arg) {
    // The Start record lives at the top of the fiber's own stack.
    uintptr_t top = reinterpret_cast<uintptr_t>(stack + size) & ~static_cast<uintptr_t>(15);
    Start *s = reinterpret_cast<Start *>(top - sizeof(Start));
    s->entry = entry;
    s->arg = arg;
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = stack;
    ctx->uc.uc_stack.ss_size = (reinterpret_cast<uintptr_t>(s) - reinterpret_cast<uintptr_t>(stack)) & ~static_cast<size_t>(15);
    ctx->uc.uc_link = nullptr;
    uintptr_t p = reinterpret_cast<uintptr_t>(s);
    makecontext(&ctx->uc, reinterpret_cast<void (*)()>(&ucontext_trampoline), 2,
                static_cast<unsigned>(p >> 32), static_cast<unsigned>(p & 0xffffffffu));
}

#endif

namespace {
constexpr size_t kCanaryBytes = 64;
unsigned char canary_byte(size_t i) { return static_cast<unsigned char>(0x5a ^ (i * 29)); }
}  // namespace

bool stack_alloc(Stack *s, size_t size) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size = (size + page - 1) / page * page;
    void *m = mmap(nullptr, size + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return false;
    if (mprotect(m, page, PROT_NONE) != 0) {
        munmap(m, size + page);
        return false;
    }
    s->mapping = static_cast<unsigned char *>(m);
    s->mapping_size = size + page;
    s->base = s->mapping + page;
    s->size = size;
    return true;
}

void stack_free(Stack *s) {
    if (s->mapping) munmap(s->mapping, s->mapping_size);
    *s = Stack{};
}

void stack_arm_canary(const Stack &s) {
    for (size_t i = 0; i < kCanaryBytes; i++) s.base[i] = canary_byte(i);
}

bool stack_canary_intact(const Stack &s) {
    for (size_t i = 0; i < kCanaryBytes; i++)
        if (s.base[i] != canary_byte(i)) return false;
    return true;
}

}  // namespace emu
}  // namespace pa
