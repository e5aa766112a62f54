/* insn_count: a qemu-user TCG plugin that counts the guest instructions a program executes,
 * and, for aarch64 guests, how many of them are Advanced SIMD (NEON) vector instructions.
 *
 * qemu-user timings say nothing about a board; instruction counts are deterministic and move
 * with vectorisation, so they are how CI shows that the NEON kernels ran: fewer instructions
 * than PRUNUS_ISA=scalar, and vector FMLAs, which the explicit NEON kernels issue and the
 * auto-vectorised portable code does not (Rust never contracts a * b + c into a fused
 * multiply-add by itself).
 *
 * Written against the QEMU plugin API version 1 (QEMU 7.2, Debian 12's qemu-user); the few
 * declarations it needs are repeated here so that no QEMU development package is needed.
 *
 *   gcc -shared -fPIC -O2 -o insn_count.so toolchains/qemu-insn/insn_count.c
 *   QEMU_CPU=cortex-a72 qemu-aarch64 -plugin ./insn_count.so -d plugin -L /usr/aarch64-linux-gnu \
 *       prunus bench model.prunus --threads 1
 *   -> "insn_count: insns=<total> simd=<vector instructions> fmla=<vector FMLAs>" on stderr
 *
 * Counters are plain inline additions: exact for single-threaded guests only (run the
 * measured program with one worker thread). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- the part of qemu-plugin.h (API v1) this plugin uses ---- */
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
    const char *target_name; /* first member of qemu_info_t in every API version */
} plugin_info_prefix;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 = 0 };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void *),
                                    void *userdata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* ---- counting ---- */
static uint64_t total_insns;
static uint64_t simd_insns;
static uint64_t fmla_insns;
static int classify_aarch64;

/* A64 "Data processing - scalar FP and Advanced SIMD" has bits 27:25 = 111; the vector
 * (not scalar) forms have bit 31 = 0 and bit 28 = 0: 0Qx0 111x. Advanced SIMD load/store
 * multiple and single structures (LD1/ST1 ... with and without post-index) are 0Q00 110x 0.
 * Scalar FP (fadd s0, ...) and plain LDR/STR of q registers are not counted. */
static int is_a64_simd_vector(uint32_t insn)
{
    if ((insn & 0x9e000000u) == 0x0e000000u)
        return 1;
    if ((insn & 0xbe000000u) == 0x0c000000u)
        return 1;
    return 0;
}

/* FMLA (vector) 0Q0 01110 0sz1 Rm 110011 Rn Rd, and FMLA (by element)
 * 0Q0 01111 1sz L M Rm 0001 H0 Rn Rd, single and double precision. */
static int is_a64_fmla_vector(uint32_t insn)
{
    return (insn & 0xbfa0fc00u) == 0x0e20cc00u || (insn & 0xbf80f400u) == 0x0f801000u;
}

static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total_insns, n);
    if (!classify_aarch64)
        return;
    uint64_t simd = 0, fmla = 0;
    for (size_t i = 0; i < n; i++) {
        const struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint32_t word;
        if (qemu_plugin_insn_size(insn) != sizeof word)
            continue;
        memcpy(&word, qemu_plugin_insn_data(insn), sizeof word);
        simd += (uint64_t)is_a64_simd_vector(word);
        fmla += (uint64_t)is_a64_fmla_vector(word);
    }
    if (simd)
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &simd_insns,
                                                 simd);
    if (fmla)
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &fmla_insns,
                                                 fmla);
}

static void on_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    char line[128];
    if (classify_aarch64)
        snprintf(line, sizeof line, "insn_count: insns=%llu simd=%llu fmla=%llu\n",
                 (unsigned long long)total_insns, (unsigned long long)simd_insns,
                 (unsigned long long)fmla_insns);
    else
        snprintf(line, sizeof line, "insn_count: insns=%llu\n", (unsigned long long)total_insns);
    qemu_plugin_outs(line);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const void *info, int argc,
                                                               char **argv)
{
    (void)argc;
    (void)argv;
    const plugin_info_prefix *prefix = info;
    classify_aarch64 = prefix && prefix->target_name && strcmp(prefix->target_name, "aarch64") == 0;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
