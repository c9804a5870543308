"""Keyword spotting: 12 labels (ten keywords, ``_silence_``, ``_unknown_``) from 1 s of 16 kHz audio.

Data (:mod:`.data`): a Speech Commands-style folder (``--data``, split by speaker, see
:mod:`.speech_commands`), the synthesized corpus (default, :mod:`.synth_speech`), or both
(``--data DIR --synth``). Every training clip is augmented ``copies`` times (:mod:`.audio_augment`,
:mod:`.features`); evaluation clips are not augmented.

Model (:mod:`.ds_cnn`): a DS-CNN (Zhang et al. 2017, "Hello Edge"; the MLPerf Tiny KWS reference)
on 49×10 MFCCs — one strided 10×4 convolution, then depthwise-separable blocks, average pooling and
a dense softmax. The ``full`` preset (width 48, depth 4) needs ~1.6 M MACs per inference, well under
our 2 M budget; MLPerf's width-64 model needs ~2.7 M.

Recipe (:mod:`.train`), optional speech-embedding teacher (:mod:`.teacher`,
:mod:`.speech_embedding`), fresh augmentation per epoch (:mod:`.epochs`), metrics and
``tinyfleet evaluate`` (:mod:`.evaluate`).
"""

from training.kws.data import KwsData, build_dataset, split_by_fold
from training.kws.ds_cnn import ds_cnn
from training.kws.evaluate import evaluate, evaluation_set, plot_confusion, score
from training.kws.presets import DETECTION, PRESETS, SEARCH_SPACE
from training.kws.report_chart import REPORT_TITLE, report_chart
from training.kws.train import train

__all__ = [
    "DETECTION",
    "PRESETS",
    "REPORT_TITLE",
    "SEARCH_SPACE",
    "KwsData",
    "build_dataset",
    "ds_cnn",
    "evaluate",
    "evaluation_set",
    "plot_confusion",
    "report_chart",
    "score",
    "split_by_fold",
    "train",
]
