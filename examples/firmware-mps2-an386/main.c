/* A minimal bare-metal application for the Arm MPS2 AN386 board (Cortex-M4F) that uses a model
 * compiled by tinyc: it classifies eight digit images, prints each result on UART0 and exits
 * (through semihosting when EXIT_VIA_SEMIHOSTING is defined, as in QEMU; a board would idle). */
#include <stdint.h>

#include "digits_mlp.h"
#include "sample.h"

/* CMSDK APB UART0 of the MPS2 FPGA images. */
#define UART0_DATA (*(volatile uint32_t *)0x40004000u)
#define UART0_STATE (*(volatile uint32_t *)0x40004004u)
#define UART0_CTRL (*(volatile uint32_t *)0x40004008u)
#define UART0_BAUDDIV (*(volatile uint32_t *)0x40004010u)

static void uart_init(void)
{
    UART0_BAUDDIV = 16u; /* the smallest divider the UART accepts */
    UART0_CTRL = 1u;     /* transmitter on */
}

static void uart_putc(char c)
{
    while (UART0_STATE & 1u) { /* transmit buffer full */
    }
    UART0_DATA = (uint32_t)(unsigned char)c;
}

static void uart_puts(const char *s)
{
    while (*s) {
        uart_putc(*s++);
    }
}

static void uart_putd(int v)
{
    char buf[12];
    int n = 0;
    if (v < 0) {
        uart_putc('-');
        v = -v;
    }
    do {
        buf[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0) {
        uart_putc(buf[--n]);
    }
}

static void finish(int code)
{
#ifdef EXIT_VIA_SEMIHOSTING
    const uint32_t args[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
    register uint32_t r0 __asm__("r0") = 0x20u; /* SYS_EXIT_EXTENDED */
    register const uint32_t *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
#else
    (void)code;
#endif
    for (;;) {
    }
}

int main(void)
{
    static float probs[10];
    int correct = 0;
    uart_init();
    uart_puts("tinyc digits_mlp on MPS2 AN386\n");
    for (int i = 0; i < SAMPLE_COUNT; ++i) {
        if (digits_mlp_run(sample_pixels[i], probs) != 0) {
            uart_puts("run failed\n");
            finish(1);
        }
        int best = 0;
        for (int k = 1; k < 10; ++k) {
            if (probs[k] > probs[best]) {
                best = k;
            }
        }
        correct += best == sample_labels[i];
        uart_puts("sample ");
        uart_putd(i);
        uart_puts(": predicted ");
        uart_putd(best);
        uart_puts(", label ");
        uart_putd(sample_labels[i]);
        uart_puts("\n");
    }
    uart_putd(correct);
    uart_puts(" of 8 correct\n");
    finish(0);
    return 0;
}
