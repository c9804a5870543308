"""The exported Arduino library builds the way arduino-cli builds it, with the Arm cross-compiler.

No IDE and no Arduino core here, so the test replays arduino-cli's recipe for a library: every
``.c``/``.cpp`` under ``src/`` (recursively) compiled as C/C++, the example sketch preprocessed
into ``<name>.ino.cpp`` (``#include <Arduino.h>`` and a ``#line`` directive prepended) and compiled
as C++, with ``src/`` and the TFLM sources on the include path, for a Cortex-M4F
(``arm-none-eabi-g++``, as the Nano 33 BLE / Portenta class of boards). ``tests/firmware_arduino_core``
stands in for the core: an empty ``Arduino.h`` and a ``main()`` that calls ``setup()`` and then
``loop()`` a fixed number of times. The objects are then linked with the same TFLM objects the exported
Makefile builds for ``cortex-m4`` (cached) and the image runs in QEMU's MPS2 AN386: ``setup()``
allocates the arena of model_config.h and ``loop()`` infers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from firmware_fixtures import air_quality_bundle, bearing_windows, kws_bundle, vibration_bundle

from firmware_bridge import arduino
from firmware_bridge.build import QEMU, build, missing_tools, tflm_root, third_party_dir
from firmware_bridge.export import export_firmware

CORE = Path(__file__).parent / "firmware_arduino_core"
ARCH = ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"]
# arduino-cli's compile lines for an Arm board, with warnings as errors on the exported code (the
# library's own headers come in through -isystem, as in the exported Makefile).
COMMON = [*ARCH, "-Os", "-ffunction-sections", "-fdata-sections", "-DARDUINO=10819"]
COMMON += ["-DTF_LITE_STATIC_MEMORY", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion"]
LOOPS = 200  # vibration's first window needs 4096 / 32 pushes; KWS infers every 12 hops
C_FLAGS = ["-std=gnu11", *COMMON]
CXX_FLAGS = ["-std=gnu++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics", *COMMON]

pytestmark = [
    pytest.mark.needs_tf,
    pytest.mark.skipif(
        third_party_dir() is None,
        reason="no TFLM sources: set TINYFLEET_THIRD_PARTY or put shared/third_party beside the repo",
    ),
    pytest.mark.skipif(
        missing_tools("cortex-m4") is not None, reason=str(missing_tools("cortex-m4"))
    ),
]


def _tflm_includes() -> list[str]:
    root = tflm_root()
    downloads = root / "tensorflow/lite/micro/tools/make/downloads"
    return [
        f"-isystem{path}"
        for path in (root, downloads / "flatbuffers/include", downloads / "gemmlowp")
    ]


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stderr[-4000:]}")


def arduino_cli_compile(library: Path, out: Path) -> list[Path]:
    """Compile the library's ``src/`` and its example sketch as arduino-cli does; the objects."""
    examples = sorted((library / "examples").iterdir())
    assert len(examples) == 1, f"one example sketch expected, got {examples}"
    sketch = examples[0] / f"{examples[0].name}.ino"
    out.mkdir(parents=True, exist_ok=True)
    preprocessed = out / f"{sketch.name}.cpp"
    preprocessed.write_text(f'#include <Arduino.h>\n#line 1 "{sketch}"\n{sketch.read_text()}')
    includes = [f"-I{CORE}", f"-I{library / 'src'}", *_tflm_includes()]
    sources = [preprocessed, CORE / "main.cpp"]  # the core's main(): setup(), loop() x LOOPS
    sources += sorted(p for p in (library / "src").rglob("*") if p.suffix in (".c", ".cpp"))
    objects = []
    for index, source in enumerate(sources):
        obj = out / f"{index:02d}_{source.stem}.o"
        if source.suffix == ".c":
            command = ["arm-none-eabi-gcc", *C_FLAGS, *includes]
        else:
            command = [
                "arm-none-eabi-g++",
                *CXX_FLAGS,
                *includes,
                f"-DTINYFLEET_TEST_LOOPS={LOOPS}",
            ]
        _run([*command, "-c", str(source), "-o", str(obj)], out)
        objects.append(obj)
    return objects


def _bundles(root: Path) -> dict[str, object]:
    from device_sim.features.vibration import VibrationFeatureConfig

    config = VibrationFeatureConfig(axes=1)
    air, _ = air_quality_bundle(root / "air_quality")
    return {
        "kws": kws_bundle(root / "kws"),
        "vibration": vibration_bundle(root / "vibration", bearing_windows(config), config),
        "air_quality": air,
    }


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return _bundles(tmp_path_factory.mktemp("bundles"))


@pytest.mark.parametrize("task", ["kws", "vibration", "air_quality"])
def test_arduino_library_follows_the_library_specification(bundles, task, tmp_path):
    export_firmware(bundles[task], tmp_path, target="arduino")
    library = tmp_path / f"tinyfleet_{task}"
    assert arduino.layout_problems(library) == []
    assert (library / "examples" / f"{task}_inference" / f"{task}_inference.ino").is_file()


def test_layout_check_catches_what_arduino_cli_refuses(bundles, tmp_path):
    export_firmware(bundles["air_quality"], tmp_path, target="arduino")
    library = tmp_path / "tinyfleet_air_quality"
    properties = library / "library.properties"
    text = properties.read_text()
    properties.write_text(text.replace("category=Data Processing", "category=Machine Learning"))
    (library / "stray.cpp").write_text("int stray;\n")
    example = library / "examples" / "air_quality_inference"
    example.rename(example.with_name("renamed"))
    problems = arduino.layout_problems(library)
    assert len(problems) == 3, problems


@pytest.mark.parametrize("task", ["kws", "vibration", "air_quality"])
def test_arduino_library_compiles_links_and_runs_on_a_cortex_m4(bundles, task, tmp_path):
    """Compiled as arduino-cli would (warnings as errors), linked with TFLM, run in QEMU."""
    bundle = bundles[task]
    export_firmware(bundle, tmp_path / "arduino", target="arduino")
    objects = arduino_cli_compile(tmp_path / "arduino" / f"tinyfleet_{task}", tmp_path / "obj")
    # The TFLM objects for the model's kernels, as the exported Makefile builds them (cached).
    export_firmware(bundle, tmp_path / "c", target="c")
    app = f"tinyfleet_{task}"
    build(tmp_path / "c", "cortex-m4", app=app)
    built = tmp_path / "c" / "build" / "cortex-m4"
    image = tmp_path / f"{app}_arduino.elf"
    _run(
        ["arm-none-eabi-g++", *ARCH, *map(str, objects), str(built / "startup_mps2_an386.o")]
        + [str(built / f"libtflm_{app}.a"), "-Wl,--gc-sections", "--specs=nano.specs"]
        + ["--specs=rdimon.specs", "-nostartfiles", f"-T{tmp_path / 'c/platform/mps2_an386.ld'}"]
        + ["-lm", "-o", str(image)],
        tmp_path,
    )
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} not installed: the image links, it was not run")
    result = subprocess.run(
        [QEMU, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none"]
        + ["-semihosting-config", "enable=on,target=native", "-kernel", str(image)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    config = (tmp_path / "arduino" / app / "src" / "model_config.h").read_text()
    arena = re.search(r"#define TINYFLEET_ARENA_BYTES (\d+)", config).group(1)
    assert f"arena {arena} bytes" in output, output
    assert "AllocateTensors failed" not in output and "Invoke failed" not in output
    # The default sensor hooks deliver zeros: classifiers and regressors infer on them, the
    # vibration front end refuses a flat window (and says so) -- either way loop() ran.
    expected = {"kws": "score", "vibration": "flat", "air_quality": "/1000"}[task]
    assert expected in output, output
