"""Guest instruction counts from QEMU, between the self-test's two SysTick reads around ``Invoke()``.

Why a plugin of our own: Debian's ``qemu-system-arm`` (7.2) is built with TCG plugin support but
ships none of QEMU's example plugins (no ``libinsn.so``) and no ``qemu-plugin.h``. The plugin below
(C, compiled once with the host gcc into the cache folder) declares the few calls of QEMU's plugin
API (version 1) it uses, counts every guest instruction as it executes (an inline add, no
callback) and, at every load from SysTick's current-value register (0xE000E018), prints the count
so far. The self-test reads that register right before and right after ``Invoke()``, so the
difference of a pair is the number of instructions retired in between: the same span SysTick
measures, counted rather than inferred from ``-icount`` timing.

Instructions are **not cycles**: QEMU models no pipeline, no flash wait states, no bus contention;
a Cortex-M4 needs more cycles than instructions (loads, branches, multiply-accumulates in sequence).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from firmware_bridge.errors import FirmwareError

SYSTICK_CVR = 0xE000E018
PLUGIN_SOURCE = r"""
/* tinyfleet: instruction count at every load from SysTick CVR (QEMU TCG plugin, API version 1). */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
struct qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1 };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*mem_cb)(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *data);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t index);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, mem_cb cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw,
                                      void *data);
void qemu_plugin_outs(const char *text);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t executed;

static void on_load(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *data)
{
    char line[64];
    (void)vcpu;
    (void)info;
    (void)data;
    if (vaddr == SYSTICK_CVR) {
        snprintf(line, sizeof line, "insn-at-systick %" PRIu64 "\n", executed);
        qemu_plugin_outs(line);
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i;
    (void)id;
    for (i = 0; i < qemu_plugin_tb_n_insns(tb); ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &executed, 1);
        qemu_plugin_register_vcpu_mem_cb(insn, on_load, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_R,
                                         NULL);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                              const struct qemu_info_t *info,
                                                              int argc, char **argv)
{
    (void)info;
    (void)argc;
    (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    return 0;
}
"""


def plugin_path(cache: Path) -> Path:
    """The compiled plugin in ``cache`` (built on first use with the host gcc)."""
    source = f"#define SYSTICK_CVR 0x{SYSTICK_CVR:X}u\n" + PLUGIN_SOURCE
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    path = cache / f"qemu-insn-{digest}.so"
    if path.is_file():
        return path
    if shutil.which("gcc") is None:
        raise FirmwareError("counting instructions needs the host gcc: apt-get install gcc")
    cache.mkdir(parents=True, exist_ok=True)
    source_path = cache / f"qemu-insn-{digest}.c"
    source_path.write_text(source)
    scratch = path.with_suffix(f".{digest}.tmp")
    command = ["gcc", "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra"]
    result = subprocess.run(
        [*command, str(source_path), "-o", str(scratch)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise FirmwareError(f"building the QEMU instruction-count plugin failed:\n{result.stderr}")
    scratch.replace(path)
    return path


def qemu_arguments(plugin: Path, log: Path) -> list[str]:
    """``qemu-system-arm`` arguments that load the plugin and send its lines to ``log``."""
    return ["-plugin", str(plugin), "-d", "plugin", "-D", str(log)]


def instructions_per_invoke(log_text: str) -> list[int]:
    """Instructions between each pair of SysTick reads (one pair per inference), in order."""
    counts = [int(line.split()[1]) for line in log_text.splitlines() if line.startswith("insn-at")]
    if len(counts) % 2:
        raise FirmwareError(f"unpaired SysTick reads in the instruction log ({len(counts)})")
    return [end - start for start, end in zip(counts[::2], counts[1::2], strict=True)]
