"""The exported project cross-built for a Cortex-M4F with CMSIS-NN kernels and run in QEMU.

``make TFLM_ROOT=… TARGET=cortex-m4`` as the exported README says: Debian's arm-none-eabi-gcc,
newlib-nano, TFLM with CMSIS-NN's optimised int8 kernels, linked for Arm's MPS2 AN386 board.
``qemu-system-arm -M mps2-an386`` runs the self-test image with semihosting; the int8 outputs it
prints for real sensor data must be identical to the TFLM Python interpreter's on the same inputs,
and the 32-bit MCU must manage with the arena in model_config.h (measured on the 64-bit host).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from firmware_fixtures import (
    air_quality_bundle,
    assert_identical_to_python,
    bearing_stream,
    vibration_bundle,
)

from device_sim.bundle import load_bundle
from firmware_bridge.build import (
    QEMU,
    THIRD_PARTY_ENV,
    build,
    missing_tools,
    run_selftest,
    third_party_dir,
)
from firmware_bridge.export import export_firmware
from firmware_bridge.qemu_insn import PluginNotLoaded

pytestmark = [
    pytest.mark.needs_tf,
    pytest.mark.skipif(
        third_party_dir() is None,
        reason=f"no TFLM sources: set {THIRD_PARTY_ENV} or put shared/third_party beside the repo",
    ),
    pytest.mark.skipif(
        missing_tools("cortex-m4") is not None, reason=str(missing_tools("cortex-m4"))
    ),
]
needs_qemu = pytest.mark.skipif(
    shutil.which(QEMU) is None, reason=f"{QEMU} not installed: apt-get install qemu-system-arm"
)


@needs_qemu
def test_cortex_m4_image_runs_in_qemu_and_matches_tflm_bit_for_bit_on_real_bearings(tmp_path):
    from device_sim.features.vibration import VibrationFeatureConfig

    config = VibrationFeatureConfig(axes=1)
    stream = bearing_stream(config)
    n, hop = config.window_samples, config.hop_samples
    starts = range(0, len(stream) - n + 1, hop)
    bundle = vibration_bundle(tmp_path / "bundle", np.stack([stream[s : s + n] for s in starts]))
    export_firmware(bundle, tmp_path / "fw", selftest_values=stream)
    image = build(tmp_path / "fw", "cortex-m4", app="tinyfleet_vibration", selftest=True)
    results = run_selftest(image)
    assert [r.pushed for r in results] == [s + n for s in starts]
    assert_identical_to_python(bundle, results)


@needs_qemu
def test_cortex_m4_air_quality_image_matches_tflm_in_qemu(tmp_path):
    bundle, windows = air_quality_bundle(tmp_path / "bundle")
    windows = windows[::31][:6]
    export_firmware(bundle, tmp_path / "fw", selftest_values=windows)
    image = build(tmp_path / "fw", "cortex-m4", app="tinyfleet_air_quality", selftest=True)
    results = run_selftest(image)
    assert len(results) == len(windows)
    # Identical to TFLM; LiteRT's builtin FC kernel rounds one of these 18 outputs one step
    # differently (measured: the same happens on random inputs, docs/firmware.md).
    assert_identical_to_python(bundle, results, litert_steps=1)
    # SysTick around Invoke() under -icount: an instruction-count proxy is reported.
    assert all(r.ticks is not None and r.ticks > 0 for r in results)
    # QEMU's own count of the instructions Invoke() retires (our TCG plugin): under -icount
    # shift=0 (1 ns per instruction) the MPS2's 25 MHz SysTick ticks once per 40 instructions.
    try:
        counted = run_selftest(image, count_instructions=True)
    except PluginNotLoaded as exc:
        pytest.skip(str(exc))
    assert [r.output.tolist() for r in counted] == [r.output.tolist() for r in results]
    for result in counted:
        assert result.instructions is not None and result.ticks is not None
        assert abs(result.instructions - 40 * result.ticks) <= 80, (
            result.ticks,
            result.instructions,
        )


def test_export_for_cortex_m4_records_the_linkers_sizes(tmp_path):
    bundle, _ = air_quality_bundle(tmp_path / "bundle")
    summary = export_firmware(bundle, tmp_path / "fw", target="cortex-m4")
    linked = summary["linked"]
    assert (tmp_path / "fw" / "build" / "cortex-m4" / "tinyfleet_air_quality.elf").is_file()
    # The model array is flash (.text); the arena and front-end buffers are static RAM (.bss).
    assert linked["text_bytes"] > bundle.sizes["tflite_bytes"] + summary["frontend_table_bytes"]
    assert linked["bss_bytes"] >= summary["arena_size_bytes"]
    assert load_bundle(bundle.directory).sizes["linked"]["cortex-m4"] == linked
