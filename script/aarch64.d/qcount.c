/*
 * qcount: a qemu TCG plugin that counts the guest instructions a process executes, summed
 * over all its threads (in qemu-user every guest thread is a vCPU).
 *
 * Built by script/aarch64 with the host's cc against qemu's <qemu-plugin.h> (taken from the
 * Debian source of the same qemu release as the qemu-aarch64 that loads it), and loaded with
 * `qemu-aarch64 -plugin libqcount.so,out=FILE`.
 *
 * - At exit it writes "qcount: N instructions" to FILE (or stderr without out=); a child
 *   that the guest fork()s without exec() continues from its parent's count and writes
 *   "qcount: forked child PID: N instructions".  Programs the guest exec()s run under the
 *   binfmt qemu without the plugin: they are not counted.
 * - A guest can read its own running total: a getpid() system call whose first argument is
 *   QCOUNT_MAGIC makes the plugin write the total so far, as decimal text, to
 *   /tmp/.qcount-PID (PID: the guest's pid) before the call runs; script/aarch64.d/qcount.py
 *   wraps that as qcount.instructions().
 *
 * Counting: each translated block adds its instruction count when it starts executing, into
 * a per-vCPU slot (no atomics, no contention between threads).  A block left early (a fault)
 * still counts whole; a guest that is deterministic gives the same count on every run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define QCOUNT_MAGIC 0x51434f554e54ULL /* "QCOUNT" */
#define MAX_VCPUS 4096
#define AARCH64_GETPID 172

/* one cache line per vCPU so that threads do not share lines */
static struct { uint64_t n; char pad[56]; } counts[MAX_VCPUS];
static uint64_t overflow; /* vCPUs past MAX_VCPUS (never seen in practice) */
static char out_path[4096];
static int main_pid; /* a fork()ed child (no exec) has its own count, reported apart */

static uint64_t total(void)
{
    uint64_t sum = __atomic_load_n(&overflow, __ATOMIC_RELAXED);
    for (int i = 0; i < MAX_VCPUS; i++) {
        sum += __atomic_load_n(&counts[i].n, __ATOMIC_RELAXED);
    }
    return sum;
}

static void tb_exec(unsigned int vcpu_index, void *udata)
{
    uint64_t n = (uint64_t)(uintptr_t)udata;
    if (vcpu_index < MAX_VCPUS) {
        counts[vcpu_index].n += n;
    } else {
        __atomic_fetch_add(&overflow, n, __ATOMIC_RELAXED);
    }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)n);
}

static void syscall_entry(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                          uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                          uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num != AARCH64_GETPID || a1 != QCOUNT_MAGIC) {
        return;
    }
    char path[64], tmp[80];
    snprintf(path, sizeof path, "/tmp/.qcount-%d", (int)getpid());
    snprintf(tmp, sizeof tmp, "%s.%u", path, vcpu_index);
    FILE *f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "%" PRIu64 "\n", total());
        fclose(f);
        rename(tmp, path);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    char line[128];
    if ((int)getpid() == main_pid) {
        snprintf(line, sizeof line, "qcount: %" PRIu64 " instructions\n", total());
    } else {
        snprintf(line, sizeof line, "qcount: forked child %d: %" PRIu64 " instructions\n",
                 (int)getpid(), total());
    }
    FILE *f = out_path[0] ? fopen(out_path, "a") : NULL;
    if (f) {
        fputs(line, f);
        fclose(f);
    } else {
        fputs(line, stderr);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        } else {
            fprintf(stderr, "qcount: unknown option %s\n", argv[i]);
            return -1;
        }
    }
    main_pid = (int)getpid();
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, syscall_entry);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
