/* tinyc's instruction counter: a QEMU TCG plugin (API version 1, as in QEMU 7.2; Debian ships no
 * plugin header, so the few declarations used are written out here). Every translated block gets
 * an inline counter of its executions; at exit the plugin writes one line per block translation,
 * "<guest address in hex> <instructions in the block> <executions>", to the file named by the
 * plugin argument out=FILE. tinyc attributes the blocks to functions with the ELF's symbols. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

struct block {
    uint64_t vaddr;
    uint64_t insns;
    uint64_t count;
};

/* Blocks live in chunks that never move (the inline counters point into them). */
#define CHUNK 4096
static struct block *chunks[65536];
static size_t n_blocks;
static char out_path[4096] = "insn_counts.txt";

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t c = n_blocks / CHUNK;
    if (c >= sizeof chunks / sizeof chunks[0]) {
        return;
    }
    if (chunks[c] == NULL) {
        chunks[c] = calloc(CHUNK, sizeof(struct block));
        if (chunks[c] == NULL) {
            return;
        }
    }
    struct block *b = &chunks[c][n_blocks % CHUNK];
    ++n_blocks;
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->insns = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->count, 1);
}

static void at_plugin_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    FILE *f = fopen(out_path, "w");
    if (f == NULL) {
        return;
    }
    for (size_t i = 0; i < n_blocks; ++i) {
        const struct block *b = &chunks[i / CHUNK][i % CHUNK];
        if (b->count) {
            fprintf(f, "%llx %llu %llu\n", (unsigned long long)b->vaddr, (unsigned long long)b->insns,
                    (unsigned long long)b->count);
        }
    }
    fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                                int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            strncpy(out_path, argv[i] + 4, sizeof out_path - 1);
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_plugin_exit, NULL);
    return 0;
}
