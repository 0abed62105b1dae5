// Fibers for the SIMT emulator: one stack and one saved context per emulated GPU thread, switched
// cooperatively. On x86-64 the switch is a few instructions of our own (callee-saved registers,
// MXCSR and the x87 control word, stack pointer): swapcontext would make a signal-mask syscall per
// switch, and the emulator switches at every collective of every lane. Elsewhere: ucontext.
#pragma once

#include <stddef.h>
#include <stdint.h>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace pa {
namespace emu {

struct FiberContext {
#if defined(__x86_64__)
    void *sp = nullptr;
#else
    ucontext_t uc;
#endif
};

// Saves the running context into `from` and resumes `to`.
void fiber_switch(FiberContext *from, FiberContext *to);

// Makes `ctx` start `entry(arg)` on [stack, stack + size) at its first switch. `entry` must never
// return (it switches away for good instead).
void fiber_prepare(FiberContext *ctx, unsigned char *stack, size_t size, void (*entry)(void *),
                   void *arg);

// A stack with an inaccessible guard page below it and a canary just above the guard, so an
// overflow faults or is reported instead of silently corrupting the neighbouring stack.
struct Stack {
    unsigned char *base = nullptr;  // lowest usable byte (just above the guard page)
    size_t size = 0;                // usable bytes
    unsigned char *mapping = nullptr;
    size_t mapping_size = 0;
};

bool stack_alloc(Stack *s, size_t size);
void stack_free(Stack *s);
void stack_arm_canary(const Stack &s);
bool stack_canary_intact(const Stack &s);

}  // namespace emu
}  // namespace pa
