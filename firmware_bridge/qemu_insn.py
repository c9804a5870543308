"""Guest instruction counts from QEMU for each ``Invoke()`` of a Cortex-M self-test image.

Why a plugin of our own: Debian's ``qemu-system-arm`` (7.2) is built with TCG plugin support but
ships none of QEMU's example plugins (no ``libinsn.so``) and no ``qemu-plugin.h``. The plugin below
(C, compiled once with the host gcc into the cache folder) declares the few calls of QEMU's plugin
API (version 1) it uses, counts every guest instruction as it executes (an inline add) and prints
the count between the entry of ``tflite::MicroInterpreter::Invoke()`` and the entry of
``tinyfleet_on_output()``, which ``main.cc`` calls right after ``Invoke()`` returns (addresses
from the image's symbol table). A first version marked the two reads of SysTick's current-value
register with a memory callback instead, but QEMU 7.2 reported only one of the two reads per
inference (probably because ``-icount`` re-translates the block at an I/O access), so the marks
are code addresses. Written against QEMU 7.2's plugin API; a QEMU that refuses it raises
:class:`PluginNotLoaded`.

Instructions are **not cycles**: QEMU models no pipeline, no flash wait states, no bus contention;
a Cortex-M4 needs more cycles than instructions (loads, taken branches, multiply-accumulates).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from firmware_bridge.errors import FirmwareError


class PluginNotLoaded(FirmwareError):
    """QEMU refused the plugin (another plugin API version): counts are unavailable, not wrong."""


# From the entry of tflite::MicroInterpreter::Invoke() to the entry of tinyfleet_on_output().
INVOKE_SPAN = ("_ZN6tflite16MicroInterpreter6InvokeEv", "tinyfleet_on_output")
PLUGIN_SOURCE = r"""
/* tinyfleet: instructions from the start address to the stop address (QEMU TCG plugin, API v1). */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*insn_cb)(unsigned int vcpu, void *data);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t index);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, insn_cb cb,
                                            enum qemu_plugin_cb_flags flags, void *data);
void qemu_plugin_outs(const char *text);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t executed, started, start_address, stop_address;

static void on_start(unsigned int vcpu, void *data)
{
    (void)vcpu;
    (void)data;
    started = executed;
}

static void on_stop(unsigned int vcpu, void *data)
{
    char line[64];
    (void)vcpu;
    (void)data;
    snprintf(line, sizeof line, "invoke-instructions %" PRIu64 "\n", executed - started);
    qemu_plugin_outs(line);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i;
    (void)id;
    for (i = 0; i < qemu_plugin_tb_n_insns(tb); ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint64_t address = qemu_plugin_insn_vaddr(insn);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &executed, 1);
        if (address == start_address) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else if (address == stop_address) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_stop, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
    }
}

/* Arguments: start=<hex address>,stop=<hex address>. */
__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                              const struct qemu_info_t *info,
                                                              int argc, char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "start=", 6) == 0) {
            start_address = strtoull(argv[i] + 6, NULL, 16);
        } else if (strncmp(argv[i], "stop=", 5) == 0) {
            stop_address = strtoull(argv[i] + 5, NULL, 16);
        }
    }
    if (start_address == 0 || stop_address == 0) {
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    return 0;
}
"""


def plugin_path(cache: Path) -> Path:
    """The compiled plugin in ``cache`` (built on first use with the host gcc)."""
    source = PLUGIN_SOURCE
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


def symbol_address(image: Path, symbol: str) -> int:
    """A function's address in an Arm ELF image (Thumb bit cleared), from ``arm-none-eabi-nm``."""
    result = subprocess.run(["arm-none-eabi-nm", str(image)], capture_output=True, text=True)
    for line in result.stdout.splitlines():
        words = line.split()
        if len(words) == 3 and words[2] == symbol:
            return int(words[0], 16) & ~1
    raise FirmwareError(f"{symbol} not found in {image}: is it a tinyfleet self-test image?")


def qemu_arguments(
    plugin: Path, image: Path, log: Path, span: tuple[str, str] = INVOKE_SPAN
) -> list[str]:
    """``qemu-system-arm`` arguments that load the plugin for ``image`` and log to ``log``: one
    line per arrival at ``span[1]``, counting from the latest entry of ``span[0]``."""
    start = symbol_address(image, span[0])
    stop = symbol_address(image, span[1])
    return ["-plugin", f"{plugin},start={start:x},stop={stop:x}", "-d", "plugin", "-D", str(log)]


def instructions_per_span(log_text: str) -> list[int]:
    """The instruction count of every span the plugin logged, in order."""
    return [int(line.split()[1]) for line in log_text.splitlines() if line.startswith("invoke-")]
