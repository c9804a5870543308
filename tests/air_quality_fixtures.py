"""Helpers for the air-quality tests: a small UCI-format file and a model-less bundle.

The UCI lines are copied in the file's own format (the first rows of the real AirQualityUCI.csv), then
a ``-200`` row, a malformed line, a missing hour and the trailing empty rows the real file ends with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from device_sim.bundle import Bundle, QuantizedTensor
from device_sim.features.air_quality import AirQualityWindowConfig
from device_sim.tasks.air_quality import DEFAULT_BANDS

UCI_HEADER = (
    "Date;Time;CO(GT);PT08.S1(CO);NMHC(GT);C6H6(GT);PT08.S2(NMHC);NOx(GT);PT08.S3(NOx);NO2(GT);"
    "PT08.S4(NO2);PT08.S5(O3);T;RH;AH;;"
)
UCI_LINES = [
    UCI_HEADER,
    "10/03/2004;18.00.00;2,6;1360;150;11,9;1046;166;1056;113;1692;1268;13,6;48,9;0,7578;;",
    "10/03/2004;19.00.00;2;1292;112;9,4;955;103;1174;92;1559;972;13,3;47,7;0,7255;;",
    "10/03/2004;20.00.00;2,2;1402;88;9,0;939;131;1140;114;1555;1074;11,9;54,0;0,7502;;",
    # line 5: the reference analysers are down (-200) but the sensors report
    "10/03/2004;21.00.00;-200;1376;80;9,2;948;-200;1092;-200;1584;1203;11,0;60,0;0,7867;;",
    # line 6: malformed (a sensor value is text)
    "10/03/2004;22.00.00;1,6;12x72;51;6,5;836;131;1205;116;1490;1110;11,2;59,6;0,7888;;",
    # 23:00 is missing altogether: the loader must put a NaN row there
    "11/03/2004;00.00.00;1,2;1185;31;3,6;690;62;1462;77;1333;733;11,3;56,8;0,7603;;",
    "11/03/2004;01.00.00;1;1136;31;3,3;672;62;1453;76;1333;730;10,7;60,0;0,7702;;",
    ";;;;;;;;;;;;;;;;",
    ";;;;;;;;;;;;;;;;",
]


def write_small_uci(path: Path) -> Path:
    """The lines above, CRLF-terminated like the distributed file."""
    path.write_text("\r\n".join(UCI_LINES) + "\r\n", encoding="ascii")
    return path


def model_less_bundle(tmp_path: Path, config: AirQualityWindowConfig, **head: Any) -> Bundle:
    """A :class:`Bundle` for sources and the task runtime, which never touch the model file."""
    targets = [
        {"name": "CO(GT)", "key": "CO", "unit": "mg/m³", "log_mean": 0.5, "log_std": 0.6},
        {"name": "NO2(GT)", "key": "NO2", "unit": "µg/m³", "log_mean": 4.5, "log_std": 0.4},
        {"name": "C6H6(GT)", "key": "C6H6", "unit": "µg/m³", "log_mean": 2.0, "log_std": 0.8},
    ]
    for target in targets:
        target.setdefault("offset", 0.1)
    return Bundle(
        directory=tmp_path,
        task="air_quality",
        name="test",
        version="0",
        input=QuantizedTensor((1, config.build().feature_shape[0]), "int8", 0.05, 0),
        output=QuantizedTensor((1, 3), "int8", 0.05, 0),
        feature_config=config.to_dict(),
        head={"targets": targets, "bands": dict(DEFAULT_BANDS), **head},
    )
