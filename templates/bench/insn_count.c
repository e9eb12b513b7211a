/* tinyc's instruction and memory-traffic counter: a QEMU TCG plugin (API version 1, as in QEMU 7.2;
 * Debian ships no plugin header, so the few declarations used are written out here).
 *
 * Every translated block gets an inline counter of its executions, a callback on entry (which
 * tells whether the previous block left through its end or jumped: its last instruction's branch
 * was taken) and a callback on every memory access of its instructions, which adds the access's
 * bytes to the block's counters by region: the flash (code) region, the SRAM region, or neither
 * (peripherals, semihosting). Flash reads also count "line reads": a read of a flash line
 * (line=BYTES) other than the line of the previous flash data read.
 *
 * Arguments: out=FILE, flash=ORIGIN:BYTES, ram=ORIGIN:BYTES, line=BYTES (numbers as strtoull
 * reads them). At exit the plugin writes, per block translation that ran, a line
 *   B <address hex> <instructions> <executions> <taken> <flash read> <flash written> <sram read>
 *     <sram written> <other read> <other written> <flash line reads>
 * followed by one line per instruction: "I <address hex> <disassembly>". */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr,
                                          void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
unsigned int qemu_plugin_mem_size_shift(qemu_plugin_meminfo_t info);
bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

enum { FLASH, SRAM, OTHER, REGIONS };

struct block {
    uint64_t vaddr;
    uint64_t end;  /* the address after its last instruction */
    uint64_t insns;
    uint64_t count;
    uint64_t taken;
    uint64_t bytes[REGIONS][2];  /* [region][0 read, 1 written] */
    uint64_t line_reads;
    char **disas;
};

/* Blocks live in chunks that never move (the inline counters point into them). */
#define CHUNK 4096
static struct block *chunks[65536];
static size_t n_blocks;
static struct block *previous;
static char out_path[4096] = "insn_counts.txt";
static uint64_t origin[2], size[2];  /* flash, sram */
static uint64_t line_bytes = 16, last_line = UINT64_MAX;

static void on_enter(unsigned int vcpu, void *userdata)
{
    (void)vcpu;
    struct block *b = userdata;
    if (previous != NULL && previous->end != b->vaddr) {
        ++previous->taken;
    }
    previous = b;
}

static void on_access(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *userdata)
{
    (void)vcpu;
    struct block *b = userdata;
    int store = qemu_plugin_mem_is_store(info);
    int region = vaddr - origin[FLASH] < size[FLASH] ? FLASH : vaddr - origin[SRAM] < size[SRAM] ? SRAM : OTHER;
    b->bytes[region][store] += 1u << qemu_plugin_mem_size_shift(info);
    if (region == FLASH && !store) {
        uint64_t line = vaddr / line_bytes;
        if (line != last_line) {
            ++b->line_reads;
            last_line = line;
        }
    }
}

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
    b->end = b->vaddr;
    b->disas = calloc(b->insns, sizeof(char *));
    for (size_t i = 0; i < b->insns; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        b->end = qemu_plugin_insn_vaddr(insn) + qemu_plugin_insn_size(insn);
        if (b->disas != NULL) {
            b->disas[i] = qemu_plugin_insn_disas(insn);
        }
        qemu_plugin_register_vcpu_mem_cb(insn, on_access, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, b);
    }
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->count, 1);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_enter, QEMU_PLUGIN_CB_NO_REGS, b);
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
        if (!b->count) {
            continue;
        }
        fprintf(f, "B %llx %llu %llu %llu", (unsigned long long)b->vaddr, (unsigned long long)b->insns,
                (unsigned long long)b->count, (unsigned long long)b->taken);
        for (int r = 0; r < REGIONS; ++r) {
            fprintf(f, " %llu %llu", (unsigned long long)b->bytes[r][0], (unsigned long long)b->bytes[r][1]);
        }
        fprintf(f, " %llu\n", (unsigned long long)b->line_reads);
        for (size_t k = 0; k < b->insns && b->disas != NULL; ++k) {
            fprintf(f, "I %s\n", b->disas[k] != NULL ? b->disas[k] : "?");
        }
    }
    fclose(f);
}

static void parse_region(const char *arg, int region)
{
    char *colon;
    origin[region] = strtoull(arg, &colon, 0);
    size[region] = *colon == ':' ? strtoull(colon + 1, NULL, 0) : 0;
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                                int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            strncpy(out_path, argv[i] + 4, sizeof out_path - 1);
        } else if (strncmp(argv[i], "flash=", 6) == 0) {
            parse_region(argv[i] + 6, FLASH);
        } else if (strncmp(argv[i], "ram=", 4) == 0) {
            parse_region(argv[i] + 4, SRAM);
        } else if (strncmp(argv[i], "line=", 5) == 0) {
            line_bytes = strtoull(argv[i] + 5, NULL, 0);
            line_bytes = line_bytes ? line_bytes : 16;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_plugin_exit, NULL);
    return 0;
}
