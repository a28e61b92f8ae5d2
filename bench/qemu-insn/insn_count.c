/*
 * insn_count: a QEMU TCG plugin (linux-user) that counts the guest instructions a program
 * executes, over all its threads, and the system calls it makes (all, and the file syncs
 * among them: fsync, fdatasync, syncfs), and tells the running totals on request.
 *
 *   qemu-aarch64 -plugin ./insn_count.so,ask=REQ_FIFO,tell=ANS_FIFO prog args...
 *
 * Asking: open REQ_FIFO for writing and close it; the plugin then writes the totals so far
 * as one line, "INSTRUCTIONS SYSCALLS SYNCS", to ANS_FIFO (open it for reading). Both FIFOs
 * are made by the caller (mkfifo). Without them the plugin only prints the totals to stderr
 * at exit. Used by scripts/bench-aarch64, which counts between workloads.
 *
 * Each translated block adds its instruction count when it starts executing, through a
 * callback rather than QEMU's inline add: in user mode every guest thread is a host thread
 * running in parallel, and the inline add of this API version is not atomic. Counts go to
 * per-vCPU slots on their own cache lines (atomic, since a slot may be shared when more
 * than SLOTS threads exist or when a finished thread's index is reused). A block left
 * early by a fault is counted whole; the programs measured here do not fault.
 *
 * System call numbers are the guest's: the syncs are recognised for aarch64 and x86_64.
 *
 * Written against QEMU's plugin API version 1, the one of Debian 12's QEMU 7.2 (the static
 * qemu-user 10 of bookworm-backports loads no plugins). Debian installs no header for it, so
 * the few declarations used are stated below.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- QEMU plugin API, version 1: the part this plugin uses --- */
typedef uint64_t qemu_plugin_id_t;
typedef struct {
    const char *target_name;
    struct {
        int min;
        int cur;
    } version;
    bool system_emulation;
    /* A union of system-mode fields follows; unused here. */
} qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id,
                                               struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
                                          qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index,
                                              int64_t num, uint64_t a1, uint64_t a2,
                                              uint64_t a3, uint64_t a4, uint64_t a5,
                                              uint64_t a6, uint64_t a7, uint64_t a8);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id,
                                          qemu_plugin_vcpu_syscall_cb_t cb);
/* --- end of the API declarations --- */

#define EXPORT __attribute__((visibility("default")))
#define PLUGIN_API_VERSION 1
#define SLOTS 256
#define CACHE_LINE 64

EXPORT int qemu_plugin_version = PLUGIN_API_VERSION;

struct slot {
    uint64_t insns;
    uint64_t syscalls;
    uint64_t syncs;
    char pad[CACHE_LINE - 3 * sizeof(uint64_t)];
};

struct totals {
    uint64_t insns;
    uint64_t syscalls;
    uint64_t syncs;
};

/* fsync, fdatasync and syncfs of the guest architecture; -1 where unknown. */
static int64_t sync_numbers[3] = {-1, -1, -1};

static struct slot slots[SLOTS] __attribute__((aligned(CACHE_LINE)));
static const char *ask_path;
static const char *tell_path;

static struct totals total(void)
{
    struct totals sum = {0, 0, 0};
    for (size_t i = 0; i < SLOTS; i++) {
        sum.insns += __atomic_load_n(&slots[i].insns, __ATOMIC_RELAXED);
        sum.syscalls += __atomic_load_n(&slots[i].syscalls, __ATOMIC_RELAXED);
        sum.syncs += __atomic_load_n(&slots[i].syncs, __ATOMIC_RELAXED);
    }
    return sum;
}

static int format_totals(char *buf, size_t size)
{
    struct totals t = total();
    return snprintf(buf, size, "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", t.insns, t.syscalls,
                    t.syncs);
}

static void block_executed(unsigned int vcpu_index, void *n_insns)
{
    __atomic_fetch_add(&slots[vcpu_index % SLOTS].insns, (uint64_t)(uintptr_t)n_insns,
                       __ATOMIC_RELAXED);
}

static void syscall_entered(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                            uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                            uint64_t a6, uint64_t a7, uint64_t a8)
{
    (void)id, (void)a1, (void)a2, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8;
    struct slot *slot = &slots[vcpu_index % SLOTS];
    __atomic_fetch_add(&slot->syscalls, 1, __ATOMIC_RELAXED);
    if (num == sync_numbers[0] || num == sync_numbers[1] || num == sync_numbers[2]) {
        __atomic_fetch_add(&slot->syncs, 1, __ATOMIC_RELAXED);
    }
}

static void block_translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, block_executed, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)n);
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    char line[96];
    format_totals(line, sizeof line);
    /* Straight to stderr: qemu_plugin_outs() prints only under `-d plugin`. */
    fprintf(stderr, "insn_count: total %s", line);
}

/* Waits for a writer to open and close ASK, then writes the total to TELL; forever. */
static void *answer_requests(void *unused)
{
    (void)unused;
    char buf[96];
    for (;;) {
        int ask = open(ask_path, O_RDONLY | O_CLOEXEC);
        if (ask < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "insn_count: open %s: %s\n", ask_path, strerror(errno));
            return NULL;
        }
        while (read(ask, buf, sizeof buf) > 0) {
        }
        close(ask);
        int tell = open(tell_path, O_WRONLY | O_CLOEXEC);
        if (tell < 0) {
            fprintf(stderr, "insn_count: open %s: %s\n", tell_path, strerror(errno));
            return NULL;
        }
        int len = format_totals(buf, sizeof buf);
        if (write(tell, buf, (size_t)len) != len) {
            fprintf(stderr, "insn_count: write %s: %s\n", tell_path, strerror(errno));
        }
        close(tell);
    }
}

/* The answering thread must never take a signal: QEMU's handlers expect a guest thread. */
static int start_answering(void)
{
    sigset_t all, old;
    pthread_t thread;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&thread, NULL, answer_requests, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        fprintf(stderr, "insn_count: pthread_create: %s\n", strerror(err));
        return -1;
    }
    pthread_detach(thread);
    return 0;
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                               char **argv)
{
    if (info->system_emulation) {
        fprintf(stderr, "insn_count: only for user-mode emulation (qemu-<arch>)\n");
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "ask=", 4) == 0) {
            ask_path = argv[i] + 4;
        } else if (strncmp(argv[i], "tell=", 5) == 0) {
            tell_path = argv[i] + 5;
        } else {
            fprintf(stderr, "insn_count: unknown argument %s (ask=FIFO, tell=FIFO)\n",
                    argv[i]);
            return -1;
        }
    }
    if ((ask_path == NULL) != (tell_path == NULL)) {
        fprintf(stderr, "insn_count: ask= and tell= go together\n");
        return -1;
    }
    if (strcmp(info->target_name, "aarch64") == 0) {
        sync_numbers[0] = 82, sync_numbers[1] = 83, sync_numbers[2] = 267;
    } else if (strcmp(info->target_name, "x86_64") == 0) {
        sync_numbers[0] = 74, sync_numbers[1] = 75, sync_numbers[2] = 306;
    } else {
        fprintf(stderr, "insn_count: syncs are not recognised on %s\n", info->target_name);
    }
    if (ask_path != NULL && start_answering() != 0) {
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, block_translated);
    qemu_plugin_register_vcpu_syscall_cb(id, syscall_entered);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
