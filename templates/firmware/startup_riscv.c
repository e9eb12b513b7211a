/* Startup for RISC-V test firmware (RV32, machine mode): stack and global pointer, a trap handler
 * that ends the run with a distinct exit code, .data copy, .bss clear, main(). */
#include <stdint.h>

#include "tinyc_io.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss;
int main(void);
void tinyc_reset(void);
void tinyc_trap(void);

__attribute__((naked, section(".text.start"))) void _start(void)
{
    __asm__ volatile(
        ".option push\n\t.option norelax\n\t"
        "la gp, __global_pointer$\n\t"
        ".option pop\n\t"
        "la sp, _estack\n\t"
        "la t0, tinyc_trap_entry\n\t"
        ".option push\n\t.option arch, +zicsr\n\t"
        "csrw mtvec, t0\n\t"
        ".option pop\n\t"
        "j tinyc_reset\n\t"
        ".balign 4\n"
        "tinyc_trap_entry:\n\t"
        "la sp, _estack\n\t"
        "j tinyc_trap");
}

void tinyc_reset(void)
{
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0u;
    }
    tinyc_io_exit(main());
}

/* Any exception ends the run: exit code 90 + mcause (illegal instruction, misaligned or bad
 * access, ...; tinyc's runner names them), 77 for an interrupt or an unknown cause. */
void tinyc_trap(void)
{
    uint32_t cause;
    __asm__ volatile(".option push\n\t.option arch, +zicsr\n\tcsrr %0, mcause\n\t.option pop" : "=r"(cause));
    tinyc_io_exit(cause < 16u ? 90 + (int)cause : 77);
}
