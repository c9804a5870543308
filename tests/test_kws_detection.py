"""On-device KWS: posterior smoothing and debouncing, and the audio sources that feed it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from device_sim.bundle import Bundle, QuantizedTensor
from device_sim.errors import ConfigError, DataError
from device_sim.features.audio import MfccConfig
from device_sim.sources.kws import PcmStreamSource, open_source
from device_sim.sources.wav_io import write_wav
from device_sim.tasks.kws import KeywordDetector, TaskRuntime

LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
LABELS += ["_silence_", "_unknown_"]


def _posterior(label: str, score: float) -> np.ndarray:
    scores = np.full(len(LABELS), (1 - score) / (len(LABELS) - 1), dtype=np.float32)
    scores[LABELS.index(label)] = score
    return scores


def _bundle(tmp_path: Path, **detection) -> Bundle:
    spec = QuantizedTensor((1, 49, 10, 1), "int8", 0.05, 0)
    return Bundle(
        directory=tmp_path,
        task="kws",
        name="kws-test",
        version="1",
        input=spec,
        output=QuantizedTensor((1, 12), "int8", 1 / 256, -128),
        feature_config=MfccConfig().to_dict(),
        head={"labels": LABELS, "keywords": LABELS[:10]},
        extra={"detection": {"hop_ms": 250, **detection}},
    )


def _run(runtime: TaskRuntime, stream: list[np.ndarray]) -> list[dict]:
    events = []
    for output in stream:
        result = runtime.process(output, np.zeros((49, 10, 1), np.float32))
        assert set(result.fields) == {"label", "score", "scores"}
        if result.event:
            events.append(result.event)
    return events


def test_one_spoken_word_seen_by_four_windows_gives_one_event(tmp_path):
    runtime = TaskRuntime(_bundle(tmp_path))
    silence = [_posterior("_silence_", 0.9)] * 4
    word = [_posterior("yes", s) for s in (0.5, 0.9, 0.95, 0.8)]
    events = _run(runtime, silence + word + silence)
    assert [e["label"] for e in events] == ["yes"]
    assert events[0]["type"] == "keyword" and events[0]["score"] >= 0.6
    # windows end at 1000, 1250 … ms; the 750 ms average first exceeds 0.6 with the 3rd "yes"
    # window (0.5, 0.9, 0.95 → 0.78), the 7th window, ending at 2500 ms
    assert events[0]["time_ms"] == 2500


def test_the_same_word_twice_with_a_pause_gives_two_events_a_long_word_one(tmp_path):
    runtime = TaskRuntime(_bundle(tmp_path))
    silence = [_posterior("_silence_", 0.9)] * 6
    word = [_posterior("go", 0.9)] * 3
    events = _run(runtime, silence + word + silence + word + silence)
    assert [e["label"] for e in events] == ["go", "go"]
    assert events[1]["time_ms"] - events[0]["time_ms"] >= 1000
    long_word = [_posterior("stop", 0.9)] * 12  # 3 s of "stooooop"
    assert [e["label"] for e in _run(TaskRuntime(_bundle(tmp_path)), long_word)] == ["stop"]


def test_silence_unknown_and_unsure_keywords_never_fire(tmp_path):
    runtime = TaskRuntime(_bundle(tmp_path))
    stream = [_posterior("_unknown_", 0.95)] * 6 + [_posterior("_silence_", 0.99)] * 6
    stream += [_posterior("left", 0.45)] * 6  # below the 0.6 threshold
    assert _run(runtime, stream) == []


def test_a_single_confident_window_is_not_enough_and_suppression_holds_other_words():
    detector = KeywordDetector(LABELS, suppression_ms=1000, minimum_count=2)
    assert detector.update(_posterior("yes", 0.99), 250)[2] is None  # only one window so far
    assert detector.update(_posterior("yes", 0.99), 500)[2] is not None
    # a different keyword 250 ms later is suppressed, then allowed once 1 s has passed
    assert detector.update(_posterior("no", 0.99), 750)[2] is None
    detector.update(_posterior("no", 0.99), 1000)
    detector.update(_posterior("no", 0.99), 1250)
    fired = detector.update(_posterior("no", 0.99), 1500)[2]
    assert fired is not None and fired.label == "no"


def test_hop_is_250_to_500_ms(tmp_path):
    assert TaskRuntime(_bundle(tmp_path)).hop_samples == 4000
    assert TaskRuntime(_bundle(tmp_path, hop_ms=500)).hop_samples == 8000
    with pytest.raises(Exception, match="250-500"):
        TaskRuntime(_bundle(tmp_path, hop_ms=100))


def test_stdin_source_reads_s16le_pcm_in_any_chunking():
    pcm = (np.arange(-5000, 5001, 7, dtype=np.int16)).tobytes() + b"\x01"  # odd trailing byte
    source = PcmStreamSource(io.BufferedReader(io.BytesIO(pcm)), 16000)
    chunks = []
    while (chunk := source.read(333)) is not None:
        chunks.append(chunk)
    samples = np.concatenate(chunks)
    np.testing.assert_array_equal(samples * 32768, np.arange(-5000, 5001, 7))


def test_file_source_plays_a_folder_back_to_back_with_quiet_gaps(tmp_path):
    folder = tmp_path / "clips"
    write_wav(folder / "a.wav", np.full(16000, 0.5, np.float32), 16000)
    write_wav(folder / "b.wav", np.full(8000, -0.5, np.float32), 8000)  # 8 kHz: resampled
    source = open_source(_bundle(tmp_path), "file", path=folder)
    chunks = []
    while (chunk := source.read(4000)) is not None:
        chunks.append(chunk)
    audio = np.concatenate(chunks)
    assert len(audio) == 16000 + 16000 + 3 * 16000  # 1 s gaps before, between and after
    assert np.max(np.abs(audio[:16000])) < 0.01  # the gap is quiet, not a word
    assert np.mean(audio[16000:32000]) == pytest.approx(0.5, abs=0.01)
    assert np.mean(audio[48000 + 1000 : 64000 - 1000]) == pytest.approx(-0.5, abs=0.02)
    assert [name for _, name in source.script] == ["a.wav", "b.wav"]


def test_source_errors_say_what_to_pass(tmp_path):
    bundle = _bundle(tmp_path)
    with pytest.raises(ConfigError, match="--path"):
        open_source(bundle, "file")
    with pytest.raises(DataError, match="no .wav"):
        open_source(bundle, "file", path=tmp_path)
    with pytest.raises(ConfigError, match="unknown kws source"):
        open_source(bundle, "radio")


def test_sim_source_speaks_mostly_keywords_and_keeps_a_script(tmp_path):
    pytest.importorskip("scipy")
    from device_sim.sources import kws_speech_synth

    if not kws_speech_synth.cached_words() and not kws_speech_synth.available_voices():
        pytest.skip("no synthesized corpus cached and no synthesizer installed")
    source = open_source(_bundle(tmp_path), "sim", seed=4)
    audio = np.concatenate([source.read(16000) for _ in range(40)])  # 40 s
    assert audio.dtype == np.float32 and np.max(np.abs(audio)) <= 1.0
    words = [word for _, word in source.script]
    assert len(words) >= 10
    assert sum(word in LABELS[:10] for word in words) / len(words) > 0.4
    starts = [start for start, _ in source.script]
    assert starts == sorted(starts) and starts[0] > 0
