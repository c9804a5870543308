"""Property-based: the bundle loader never crashes on arbitrary manifests or model bytes.

Whatever is in the folder, loading either succeeds or raises BundleError — never another exception.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_sim.bundle import load_bundle, sha256_bytes
from device_sim.errors import BundleError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

_fields = {
    "schema_version": st.sampled_from([1, 2, "1", None]),
    "task": st.sampled_from(["kws", "vibration", "air_quality", "other", 3]),
    "name": json_values,
    "version": json_values,
    "model_sha256": st.text(max_size=64),
    "input": json_values,
    "output": json_values,
    "feature_config": json_values,
    "head": json_values,
}
# Some manifests with every required key (to reach field parsing), some with any subset of them.
manifest_like = st.fixed_dictionaries(_fields) | st.fixed_dictionaries({}, optional=_fields)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    manifest=manifest_like | json_values,
    model=st.binary(max_size=64),
    looks_like_tflite=st.booleans(),
    hash_matches=st.booleans(),
)
def test_loader_raises_only_bundle_errors(
    manifest, model: bytes, looks_like_tflite: bool, hash_matches: bool
) -> None:
    if looks_like_tflite:
        model = model[:4].ljust(4, b"\0") + b"TFL3" + model[4:].ljust(8, b"\0")
    if hash_matches and isinstance(manifest, dict):
        # Reach the field parsing behind the hash check, not just the hash check itself.
        manifest = {**manifest, "model_sha256": sha256_bytes(model)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bundle.json").write_text(json.dumps(manifest))
        (folder / "model.tflite").write_bytes(model)
        try:
            load_bundle(folder)
        except BundleError as exc:
            assert str(exc)
