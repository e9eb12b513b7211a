/* Minimal file I/O for tinyc's test firmware: semihosting on the emulated target, stdio on the host. */
#ifndef TINYC_IO_H
#define TINYC_IO_H

#include <stddef.h>

int tinyc_io_open(const char *path, int for_writing); /* handle >= 0, or -1 */
int tinyc_io_read(int handle, void *buf, size_t len);  /* 0 when all len bytes were read */
int tinyc_io_write(int handle, const void *buf, size_t len); /* 0 when all were written */
void tinyc_io_close(int handle);
void tinyc_io_exit(int code); /* ends the program; the emulator exits with this code */
void tinyc_io_console(const char *text); /* a NUL-terminated line on the emulator's console */

#endif
