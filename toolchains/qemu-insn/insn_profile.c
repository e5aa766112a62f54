/* insn_profile: a qemu-user TCG plugin (API v1, QEMU 7.2) that writes, at exit, one line per
 * translation block executed: "guest_vaddr n_insns executions" (hex, decimal, decimal), to the
 * file named by $INSN_PROFILE_OUT (default insn_profile.txt). Where the instructions of a kernel
 * go, block by block; toolchains/insn-profile.py runs it and maps blocks to symbols.
 *
 *   gcc -shared -fPIC -O2 -o insn_profile.so toolchains/qemu-insn/insn_profile.c
 *
 * Single-threaded guests only (the counters are plain inline additions). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 = 0 };
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void *),
                                    void *userdata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;

struct rec { uint64_t vaddr, n, count; struct rec *next; };
static struct rec *head;

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    struct rec *r = calloc(1, sizeof *r);
    r->vaddr = qemu_plugin_tb_vaddr(tb);
    r->n = qemu_plugin_tb_n_insns(tb);
    r->next = head;
    head = r;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &r->count, 1);
}

static void on_exit_cb(qemu_plugin_id_t id, void *p)
{
    (void)id; (void)p;
    const char *path = getenv("INSN_PROFILE_OUT");
    FILE *f = fopen(path ? path : "insn_profile.txt", "w");
    if (!f) return;
    for (struct rec *r = head; r; r = r->next)
        if (r->count) fprintf(f, "%llx %llu %llu\n", (unsigned long long)r->vaddr,
                              (unsigned long long)r->n, (unsigned long long)r->count);
    fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const void *info, int argc,
                                                               char **argv)
{
    (void)info; (void)argc; (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
