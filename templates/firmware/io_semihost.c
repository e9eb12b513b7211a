/* tinyc_io over semihosting: Arm (BKPT 0xAB; operation in r0, argument block in r1) or RISC-V
 * (the slli/ebreak/srai sequence; operation in a0, argument block in a1). Files are opened
 * relative to the emulator's working directory. */
#include "tinyc_io.h"

#include <stdint.h>

enum {
    SYS_OPEN = 0x01,
    SYS_CLOSE = 0x02,
    SYS_WRITE0 = 0x04,
    SYS_WRITE = 0x05,
    SYS_READ = 0x06,
    SYS_EXIT_EXTENDED = 0x20,
};

#if defined(__arm__)
static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
#elif defined(__riscv)
static int semihost(int op, const void *arg)
{
    register int a0 __asm__("a0") = op;
    register const void *a1 __asm__("a1") = arg;
    /* The three instructions must be uncompressed and in one page: the debugger's marker. */
    __asm__ volatile(".option push\n\t.option norvc\n\t.balign 16\n\t"
                     "slli zero, zero, 0x1f\n\tebreak\n\tsrai zero, zero, 7\n\t.option pop"
                     : "+r"(a0) : "r"(a1) : "memory");
    return a0;
}
#else
#error "semihosting is defined for Arm and RISC-V only"
#endif

int tinyc_io_open(const char *path, int for_writing)
{
    uint32_t len = 0;
    while (path[len] != '\0') {
        ++len;
    }
    /* Modes follow fopen: 1 is "rb", 5 is "wb". */
    const uint32_t args[3] = {(uint32_t)(uintptr_t)path, for_writing ? 5u : 1u, len};
    return semihost(SYS_OPEN, args);
}

int tinyc_io_read(int handle, void *buf, size_t len)
{
    const uint32_t args[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, (uint32_t)len};
    return semihost(SYS_READ, args) == 0 ? 0 : -1; /* returns the count NOT read */
}

int tinyc_io_write(int handle, const void *buf, size_t len)
{
    const uint32_t args[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, (uint32_t)len};
    return semihost(SYS_WRITE, args) == 0 ? 0 : -1;
}

void tinyc_io_close(int handle)
{
    const uint32_t args[1] = {(uint32_t)handle};
    (void)semihost(SYS_CLOSE, args);
}

void tinyc_io_console(const char *text)
{
    (void)semihost(SYS_WRITE0, text);
}

#ifdef TINYC_EXIT_LINE
/* Emulators without the semihosting exit call (Renode 1.14 implements only the console calls) see
 * the end on the console instead: "tinyc-exit <code> <what it means>". The firmware defines
 * tinyc_exit_kind. */
const char *tinyc_exit_kind(int code);

static void exit_line(int code)
{
    char digits[12];
    char *p = digits + sizeof digits;
    unsigned v = code < 0 ? 0u - (unsigned)code : (unsigned)code;
    *--p = '\0';
    do {
        *--p = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    if (code < 0) {
        *--p = '-';
    }
    (void)semihost(SYS_WRITE0, "tinyc-exit ");
    (void)semihost(SYS_WRITE0, p);
    (void)semihost(SYS_WRITE0, " ");
    (void)semihost(SYS_WRITE0, tinyc_exit_kind(code));
    (void)semihost(SYS_WRITE0, "\n");
}
#endif

void tinyc_io_exit(int code)
{
#ifdef TINYC_EXIT_LINE
    exit_line(code);
#endif
    const uint32_t args[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
    (void)semihost(SYS_EXIT_EXTENDED, args);
    for (;;) {
    }
}
