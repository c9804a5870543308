"""Offline speech synthesis with the engines Debian ships: espeak-ng, flite and festival.

This is the KWS "sensor simulator": it turns words into 16 kHz mono float32 audio, so a device can be
fed spoken keywords without a microphone and a model can be trained without a download. Three engines
with different synthesis methods (formant, diphone/clustergen, HMM) give far more acoustic variety
than any one of them: a DS-CNN trained on espeak-ng alone reached 29 % on real speakers, 48 % once
flite's voices were added.

Each engine runs as a subprocess writing WAV files into a temporary folder (festival synthesizes a
whole batch in one process). ``pitch`` and ``speed`` are relative (1.0 = the voice's default) and map
onto each engine's own controls; ``resample`` additionally shifts pitch and tempo together by
resampling (a cheap vocal-tract/speaker perturbation that works for every engine).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from device_sim.errors import DataError
from device_sim.sources.wav_io import read_wav, resample

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
ENGINES = ("espeak-ng", "flite", "festival")
# espeak-ng English accents and voice variants (files in espeak-ng-data/voices/!v).
ESPEAK_LANGUAGES = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
ESPEAK_VARIANTS = (
    *(f"m{i}" for i in range(1, 8)),
    *(f"f{i}" for i in range(1, 6)),
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "Andy",
    "Annie",
    "Denis",
    "Gene",
    "Lee",
    "Mike",
    "Tweaky",
    "anika",
    "belinda",
    "david",
    "grandma",
    "grandpa",
    "iven",
    "john",
    "kaukovalta",
    "linda",
    "max",
    "michel",
    "norbert",
    "quincy",
    "robert",
    "steph",
    "travis",
    "victor",
    "zac",
)
# flite's female voice; its others are male. Used to centre the F0 target of diphone voices (Hz).
_FLITE_F0 = {"slt": 170.0}
_SUBPROCESS_TIMEOUT_S = 120


@dataclass(frozen=True)
class Utterance:
    """One word to synthesize. ``voice`` is engine-specific (``en-us+f3``, ``slt`` …)."""

    text: str
    engine: str
    voice: str
    pitch: float = 1.0  # relative to the voice's default
    speed: float = 1.0  # relative speaking rate (> 1 is faster)
    amplitude: float = 1.0  # relative loudness (espeak-ng only; gain is applied later anyway)
    resample: float = 1.0  # > 1 raises pitch and tempo together

    @property
    def voice_id(self) -> str:
        """Who is speaking, for splitting by voice as real data is split by speaker."""
        return f"{self.engine}:{self.voice}"


@lru_cache(maxsize=1)
def available_voices() -> dict[str, tuple[str, ...]]:
    """Installed engines and their English voices (espeak-ng: ``language+variant`` names)."""
    voices: dict[str, tuple[str, ...]] = {}
    if shutil.which("espeak-ng"):
        listing = _run(["espeak-ng", "--voices=en"]).stdout
        installed = set(re.findall(r"^\s*\d+\s+(\S+)", listing, flags=re.MULTILINE))
        languages = [lang for lang in ESPEAK_LANGUAGES if lang in installed] or ["en"]
        variants = _espeak_variants()
        voices["espeak-ng"] = tuple(f"{lang}+{var}" for lang in languages for var in variants)
    if shutil.which("flite"):
        listing = _run(["flite", "-lv"]).stdout
        names = listing.split(":", 1)[-1].split()
        voices["flite"] = tuple(names)
    if shutil.which("festival"):
        voices["festival"] = _festival_voices()
    return {engine: names for engine, names in voices.items() if names}


def _espeak_variants() -> tuple[str, ...]:
    for base in (
        Path("/usr/lib/x86_64-linux-gnu"),
        Path("/usr/lib/aarch64-linux-gnu"),
        Path("/usr/share"),
        Path("/usr/lib"),
    ):
        folder = base / "espeak-ng-data" / "voices" / "!v"
        if folder.is_dir():
            present = {p.name for p in folder.iterdir()}
            return tuple(v for v in ESPEAK_VARIANTS if v in present) or ("m1",)
    return ESPEAK_VARIANTS[:12]  # m1..m7, f1..f5 ship with every espeak-ng


def _festival_voices() -> tuple[str, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "voices.scm"
        script.write_text("(print (voice.list))\n")
        try:
            output = _run(["festival", "-b", str(script)]).stdout
        except DataError:
            return ()
    return tuple(re.findall(r"[\w-]+", output.strip().strip("()")))


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command,
            check=True,
            capture_output=True,
            text=True,
            timeout=_SUBPROCESS_TIMEOUT_S,
            **kwargs,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise DataError(f"speech synthesis failed running {command[0]}: {exc}") from exc


def _espeak_command(utt: Utterance, out: Path) -> list[str]:
    return [
        "espeak-ng",
        "-v",
        utt.voice,
        "-p",
        str(int(np.clip(50 * utt.pitch, 0, 99))),
        "-s",
        str(int(np.clip(175 * utt.speed, 80, 450))),
        "-a",
        str(int(np.clip(100 * utt.amplitude, 10, 200))),
        "-w",
        str(out),
        utt.text,
    ]


def _flite_command(utt: Utterance, out: Path) -> list[str]:
    f0 = _FLITE_F0.get(utt.voice, 105.0) * utt.pitch
    return [
        "flite",
        "-voice",
        utt.voice,
        "--setf",
        f"duration_stretch={1.0 / utt.speed:.3f}",
        "--setf",
        f"int_f0_target_mean={f0:.1f}",
        "-t",
        utt.text,
        "-o",
        str(out),
    ]


def _festival_script(utterances: list[Utterance], outs: list[Path]) -> str:
    lines = []
    for utt, out in zip(utterances, outs, strict=True):
        text = utt.text.replace('"', "")
        lines += [
            f"(voice_{utt.voice})",
            f"(Parameter.set 'Duration_Stretch {1.0 / utt.speed:.3f})",
            f'(set! utt (utt.synth (Utterance Text "{text}")))',
            f'(utt.save.wave utt "{out}" \'riff)',
        ]
    return "\n".join(lines) + "\n"


def trim_silence(
    samples: np.ndarray, threshold_db: float = 40.0, margin_ms: float = 20.0
) -> np.ndarray:
    """Cut leading/trailing parts more than ``threshold_db`` below the loudest 10 ms frame."""
    frame = SAMPLE_RATE // 100
    n_frames = len(samples) // frame
    if n_frames == 0:
        return samples
    energy = np.square(samples[: n_frames * frame].reshape(n_frames, frame)).mean(axis=1)
    active = np.flatnonzero(energy > energy.max() * 10 ** (-threshold_db / 10))
    margin = int(SAMPLE_RATE * margin_ms / 1000)
    start = max(0, active[0] * frame - margin)
    stop = min(len(samples), (active[-1] + 1) * frame + margin)
    return samples[start:stop]


def synthesize(utterances: list[Utterance]) -> list[np.ndarray | None]:
    """Synthesize a batch; returns trimmed 16 kHz float32 audio per utterance (None on failure).

    All utterances of a batch run in one temporary folder; festival ones in one festival process.
    """
    results: list[np.ndarray | None] = [None] * len(utterances)
    with tempfile.TemporaryDirectory(prefix="tinyfleet-synth-") as tmp:
        outs = [Path(tmp) / f"{i}.wav" for i in range(len(utterances))]
        festival = [i for i, utt in enumerate(utterances) if utt.engine == "festival"]
        for i, utt in enumerate(utterances):
            if utt.engine == "espeak-ng":
                _try_run(_espeak_command(utt, outs[i]))
            elif utt.engine == "flite":
                _try_run(_flite_command(utt, outs[i]))
            elif utt.engine != "festival":
                raise DataError(f"unknown speech engine {utt.engine!r}; use one of {ENGINES}")
        if festival:
            script = Path(tmp) / "batch.scm"
            script.write_text(
                _festival_script([utterances[i] for i in festival], [outs[i] for i in festival])
            )
            _try_run(["festival", "-b", str(script)])
        for i, utt in enumerate(utterances):
            if not outs[i].is_file() or outs[i].stat().st_size < 100:
                log.debug("no audio for %s", utt)
                continue
            samples = read_wav(outs[i], SAMPLE_RATE)
            if utt.resample != 1.0:
                # Playing back faster: resample to fewer samples at the same nominal rate.
                samples = resample(samples, round(SAMPLE_RATE * utt.resample), SAMPLE_RATE)
            samples = trim_silence(samples)
            if len(samples) < SAMPLE_RATE * 0.15 or not np.any(samples):
                log.debug("discarding %s: %d samples of speech", utt, len(samples))
                continue
            results[i] = samples
    return results


def _try_run(command: list[str]) -> None:
    try:
        _run(command)
    except DataError as exc:
        log.debug("%s", exc)


# ---------------------------------------------------------------- the on-disk corpus cache


def cache_dir() -> Path:
    """Where synthesized corpora are cached: ``$TINYFLEET_CACHE/kws-synth`` or
    ``${XDG_CACHE_HOME:-~/.cache}/tinyfleet/kws-synth``."""
    root = os.environ.get("TINYFLEET_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tinyfleet"
    )
    return Path(root) / "kws-synth"


def save_corpus_file(
    path: Path,
    audio: list[np.ndarray],
    words: list[str] | np.ndarray,
    speakers: list[str] | np.ndarray,
) -> None:
    """Store variable-length float recordings as one int16 array plus lengths (atomic write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(a) for a in audio], dtype=np.int64)
    pcm = np.concatenate(audio) if len(audio) else np.zeros(0, np.float32)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez_compressed(
        tmp,
        pcm=np.clip(np.round(pcm * 32767), -32768, 32767).astype(np.int16),
        lengths=lengths,
        words=np.asarray(words).astype(str),
        speakers=np.asarray(speakers).astype(str),
    )
    os.replace(tmp, path)


def load_corpus_file(path: Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(recordings as float32, words, speakers) from a file written by :func:`save_corpus_file`."""
    try:
        with np.load(path) as data:
            pcm = data["pcm"].astype(np.float32) / 32767.0
            offsets = np.concatenate([[0], np.cumsum(data["lengths"])])
            audio = [pcm[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
            return audio, data["words"], data["speakers"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"synthesized-speech cache {path} is unreadable ({exc}); delete it"
        ) from exc


def cached_words() -> list[tuple[str, np.ndarray]]:
    """(word, audio) pairs of the newest cached corpus, or [] when none is cached."""
    files = sorted(cache_dir().glob("*.npz"), key=lambda p: p.stat().st_mtime)
    for path in reversed(files):
        try:
            audio, words, _ = load_corpus_file(path)
        except DataError as exc:
            log.warning("%s", exc)
            continue
        return list(zip((str(w) for w in words), audio, strict=True))
    return []


def demo_words(
    words: tuple[str, ...], *, seed: int = 0, voices_per_word: int = 6
) -> list[tuple[str, np.ndarray]]:
    """A small corpus for the device simulator when nothing is cached: each word spoken by a few
    installed voices, synthesized once and cached."""
    voices = available_voices()
    if not voices:
        raise DataError(
            "no synthesized speech is cached and no synthesizer is installed: install espeak-ng "
            "(and flite, festival), run `tinyfleet build kws` once, or use --source file/stdin"
        )
    rng = np.random.default_rng(seed)
    engines = sorted(voices)
    utterances = []
    for word in words:
        for i in range(voices_per_word):
            engine = engines[i % len(engines)]
            names = voices[engine]
            voice = names[int(rng.integers(len(names)))]
            utterances.append(Utterance(word, engine, voice, speed=float(rng.uniform(0.85, 1.15))))
    audio = synthesize(utterances)
    kept = [(u.text, a) for u, a in zip(utterances, audio, strict=True) if a is not None]
    save_corpus_file(
        cache_dir() / f"demo-{seed}.npz",
        [a for _, a in kept],
        [w for w, _ in kept],
        [utterances[0].voice_id] * len(kept),
    )
    return kept
