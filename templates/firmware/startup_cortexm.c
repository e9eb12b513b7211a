/* Startup for Cortex-M test firmware: vector table, .data copy, .bss clear, FPU enable, main().
 * A fault ends the run through semihosting with a distinct exit code (see tinyc/emulator). */
#include <stdint.h>

#include "tinyc_io.h"

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
#if defined(__ARM_FP)
    /* CPACR: full access to coprocessors 10 and 11 (the FPU). */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    tinyc_io_exit(main());
}

/* Exit codes 70-76 mean the program faulted; tinyc's runner names them. */
void NMI_Handler(void) { tinyc_io_exit(71); }
void HardFault_Handler(void) { tinyc_io_exit(72); }
void MemManage_Handler(void) { tinyc_io_exit(73); }
void BusFault_Handler(void) { tinyc_io_exit(74); }
void UsageFault_Handler(void) { tinyc_io_exit(75); }
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
