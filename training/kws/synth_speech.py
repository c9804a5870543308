"""The default KWS corpus: the ten keywords and other words spoken by every installed synthetic voice.

Transfer to real speakers comes from engine and voice diversity, so each word is spoken by espeak-ng
(8 English accents × ~40 voice variants), flite (all ``flite -lv`` voices) and festival (its HTS
voices) at random pitch, rate, loudness and resampling factor, with random punctuation for prosody.
The corpus is cached on disk (``$TINYFLEET_CACHE`` or ``~/.cache/tinyfleet/kws-synth``), keyed by a
hash of everything that shapes it, so a second build reuses it. Synthesis runs engine subprocesses
from a thread pool: threads, not forked processes, because TensorFlow may already be loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_sim import console
from device_sim.errors import DataError
from device_sim.sources.kws_speech_synth import (
    Utterance,
    available_voices,
    cache_dir,
    load_corpus_file,
    save_corpus_file,
    synthesize,
)
from training.kws.speech_commands import KEYWORDS, UNKNOWN, split_for

log = logging.getLogger(__name__)

CORPUS_VERSION = 2  # bump when synthesis code changes what a plan produces
# The 25 non-keyword words of Speech Commands v0.02, then everyday words of 1-3 syllables. Near
# rhymes of keywords ("yet", "lift", "top") were tried and left out: real keywords said sloppily
# sound closer to a synthesizer's "lift" than to its "left", and were then called unknown.
UNKNOWN_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "eight", "five", "follow", "forward", "four", "happy",
    "house", "learn", "marvin", "nine", "one", "seven", "sheila", "six", "three", "tree", "two",
    "visual", "wow", "zero", "water", "music", "paper", "window", "number", "table", "orange",
    "morning", "kitchen", "simple",
)  # fmt: skip
_PUNCTUATION = ("", ".", "!", "?")


@dataclass(frozen=True)
class SynthPlan:
    """How many renditions of which words: ``*_renditions`` are per word, split over engines."""

    keyword_renditions: int = 150
    unknown_words: tuple[str, ...] = UNKNOWN_WORDS
    unknown_renditions: int = 30
    seed: int = 0

    def utterances(self, voices: dict[str, tuple[str, ...]]) -> list[Utterance]:
        rng = np.random.default_rng(self.seed)
        engines = sorted(voices)
        plan: list[Utterance] = []
        words = [(w, self.keyword_renditions) for w in KEYWORDS]
        words += [(w, self.unknown_renditions) for w in self.unknown_words]
        for word, renditions in words:
            for i in range(renditions):
                engine = engines[i % len(engines)]
                names = voices[engine]
                voice = (
                    names[rng.integers(len(names))]
                    if engine == "espeak-ng"
                    else names[(i // len(engines)) % len(names)]
                )
                plan.append(_vary(word, engine, voice, rng))
        return plan

    def cache_key(self, voices: dict[str, tuple[str, ...]]) -> str:
        blob = json.dumps(
            {"plan": dataclasses.asdict(self), "voices": voices, "version": CORPUS_VERSION},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _vary(word: str, engine: str, voice: str, rng: np.random.Generator) -> Utterance:
    text = word + _PUNCTUATION[rng.integers(len(_PUNCTUATION))]
    resample = round(float(rng.uniform(0.88, 1.15)), 2)
    if engine == "espeak-ng":
        return Utterance(
            text,
            engine,
            voice,
            pitch=float(rng.uniform(0.5, 1.6)),
            speed=float(rng.uniform(0.55, 1.15)),  # people say single words slowly
            amplitude=float(rng.uniform(0.6, 1.4)),
            resample=resample,
        )
    return Utterance(
        text,
        engine,
        voice,
        pitch=float(rng.uniform(0.8, 1.25)),
        speed=float(rng.uniform(0.65, 1.15)),
        resample=round(float(rng.uniform(0.85, 1.2)), 2),
    )


@dataclass
class SynthCorpus:
    """Trimmed word recordings (16 kHz float32, variable length) with their word and speaker.

    ``speakers`` is the voice plus the resampling factor (rounded to 0.05): resampling changes the
    apparent vocal-tract length, so the same voice resampled differently is a different "speaker"
    for the purpose of holding voices out.
    """

    audio: list[np.ndarray]
    words: np.ndarray
    speakers: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        return np.array([w if w in KEYWORDS else UNKNOWN for w in self.words])

    def subset(self, mask: np.ndarray) -> SynthCorpus:
        index = np.flatnonzero(mask)
        return SynthCorpus([self.audio[i] for i in index], self.words[index], self.speakers[index])

    def split(self, testing_percent: float = 20.0) -> tuple[SynthCorpus, SynthCorpus]:
        """(training, testing) with no speaker in both."""
        test = np.array([split_for(s, 0.0, testing_percent) == "testing" for s in self.speakers])
        return self.subset(~test), self.subset(test)

    def save(self, path: Path) -> None:
        save_corpus_file(path, self.audio, self.words, self.speakers)

    @classmethod
    def load(cls, path: Path) -> SynthCorpus:
        return cls(*load_corpus_file(path))


def load_or_synthesize(plan: SynthPlan, *, workers: int | None = None) -> SynthCorpus:
    """The corpus of ``plan`` from the cache, synthesizing (in parallel) and caching it if absent."""
    voices = available_voices()
    if not voices:
        raise DataError(
            "no speech synthesizer is installed, so the default KWS corpus cannot be made: install "
            "espeak-ng, flite and festival (`sudo apt-get install espeak-ng flite festival "
            "festvox-us-slt-hts`, or `make setup`), or pass --data with a Speech Commands folder"
        )
    path = cache_dir() / f"corpus-{plan.cache_key(voices)}.npz"
    if path.is_file():
        log.info("synthesized corpus from cache %s", path)
        return SynthCorpus.load(path)
    utterances = plan.utterances(voices)
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    chunks = [utterances[i : i + 32] for i in range(0, len(utterances), 32)]
    log.info(
        "synthesizing %d utterances with %s (%d workers)",
        len(utterances),
        ", ".join(f"{e}: {len(v)} voices" for e, v in voices.items()),
        workers,
    )
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        batches = console.track(
            pool.map(synthesize, chunks), "synthesizing speech", "batches", len(chunks)
        )
        results = [audio for chunk in batches for audio in chunk]
    kept = [(u, a) for u, a in zip(utterances, results, strict=True) if a is not None]
    if len(kept) < len(utterances) // 2:
        raise DataError(
            f"speech synthesis produced audio for only {len(kept)} of {len(utterances)} words: "
            "check that espeak-ng/flite/festival run (`espeak-ng -w /tmp/t.wav yes`)"
        )
    corpus = SynthCorpus(
        audio=[_fit_one_second(a) for _, a in kept],
        words=np.array([u.text.rstrip("".join(_PUNCTUATION)) for u, _ in kept]),
        speakers=np.array([f"{u.voice_id}@{round(u.resample * 20) / 20:.2f}" for u, _ in kept]),
    )
    log.info(
        "synthesized %d/%d words in %.1f s; caching in %s",
        len(kept),
        len(utterances),
        time.perf_counter() - started,
        path,
    )
    corpus.save(path)
    return corpus


def _fit_one_second(samples: np.ndarray, limit: int = 15200) -> np.ndarray:
    """Words longer than 0.95 s are sped up to fit a 1 s window with some room to shift."""
    if len(samples) <= limit:
        return samples
    from device_sim.sources.wav_io import resample

    factor = np.ceil(len(samples) / limit * 100) / 100  # a rational ratio keeps the filter short
    return resample(samples, round(16000 * factor), 16000)[:limit]
