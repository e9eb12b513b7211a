/* Startup for Cortex-M test firmware: vector table, .data copy, .bss clear, FPU enable, main().
 * A fault ends the run through semihosting with a distinct exit code (see tinyc/emulator). */
#include <stdint.h>

#include "tinyc_io.h"

/* Armv7-M and Armv8-M mainline have configurable fault handlers and the fault status register
 * (CFSR); Armv6-M (Cortex-M0+) and Armv8-M baseline only have HardFault. */
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
#define HAS_FAULT_STATUS 1
#else
#define HAS_FAULT_STATUS 0
#endif

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

void Reset_Handler(void);
void NMI_Handler(void);
void HardFault_Handler(void);
void MemManage_Handler(void);
void BusFault_Handler(void);
void UsageFault_Handler(void);
void Default_Handler(void);

void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0u;
    }
#if HAS_FAULT_STATUS
    /* SHCSR: MemManage, BusFault and UsageFault get their own handlers (not escalated to HardFault). */
    *(volatile uint32_t *)0xE000ED24u |= (1u << 16) | (1u << 17) | (1u << 18);
#endif
#if defined(__ARM_FP)
    /* CPACR: full access to coprocessors 10 and 11 (the FPU). */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    tinyc_io_exit(main());
}

/* Exit codes 71-76 and 78-82 mean the program faulted; tinyc's runner names them. */
void NMI_Handler(void) { tinyc_io_exit(71); }
void HardFault_Handler(void) { tinyc_io_exit(72); }
void MemManage_Handler(void) { tinyc_io_exit(73); }
#if HAS_FAULT_STATUS
#define CFSR (*(volatile uint32_t *)0xE000ED28u)
/* 78-82: the kind of the fault, from the CFSR. */
void BusFault_Handler(void) { tinyc_io_exit((CFSR & (1u << 9)) ? 82 : 74); }
void UsageFault_Handler(void)
{
    const uint32_t cfsr = CFSR;
    tinyc_io_exit((cfsr & (1u << 16)) ? 78 : (cfsr & (1u << 17)) ? 79 : (cfsr & (1u << 25)) ? 80 : (cfsr & (1u << 24)) ? 81 : 75);
}
#else
void BusFault_Handler(void) { tinyc_io_exit(74); }
void UsageFault_Handler(void) { tinyc_io_exit(75); }
#endif
void Default_Handler(void) { tinyc_io_exit(76); }

typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used)) const vector_t vector_table[16] = {
    (vector_t)(uintptr_t)&_estack,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
};
