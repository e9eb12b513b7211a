/* tinyc_io on a hosted C library. */
#include "tinyc_io.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_FILES 4
static FILE *files[MAX_FILES];

int tinyc_io_open(const char *path, int for_writing)
{
    for (int i = 0; i < MAX_FILES; ++i) {
        if (files[i] == NULL) {
            files[i] = fopen(path, for_writing ? "wb" : "rb");
            return files[i] ? i : -1;
        }
    }
    return -1;
}

int tinyc_io_read(int handle, void *buf, size_t len)
{
    return fread(buf, 1, len, files[handle]) == len ? 0 : -1;
}

int tinyc_io_write(int handle, const void *buf, size_t len)
{
    return fwrite(buf, 1, len, files[handle]) == len ? 0 : -1;
}

void tinyc_io_close(int handle)
{
    fclose(files[handle]);
    files[handle] = NULL;
}

void tinyc_io_exit(int code)
{
    exit(code);
}

void tinyc_io_console(const char *text)
{
    fputs(text, stdout);
}
