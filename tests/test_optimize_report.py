"""`tinyfleet report`: one self-contained HTML page per bundle, rendered in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil

import pytest
from optimize_fixtures import (
    devtools_page,
    png_is_not_blank,
    run_chromium,
    small_vibration_folder,
)

pytestmark = [pytest.mark.slow, pytest.mark.needs_tf]

SECTIONS = (
    "headline",
    "summary",
    "data",
    "training",
    "metrics",
    "task",
    "layers",
    "budget",
    "explanation",
)


@pytest.fixture(scope="module")
def vibration_bundle(tmp_path_factory):
    """A real (tiny) vibration bundle: float model, evaluation.npz, int8 model.tflite."""
    from quantize.stage import quantize_trained
    from training import vibration
    from training.stage import TrainOptions

    root = tmp_path_factory.mktemp("report")
    data = small_vibration_folder(root / "data", sample_rate=1600.0)
    knobs = (("epochs", 3), ("width", 8), ("bottleneck", 4), ("n_bands", 8), ("kmeans_clusters", 2))
    options = TrainOptions(data=data, sample_rate=1600.0, hyperparameters=knobs)
    trained = vibration.train(options)
    trained.provenance["history"] = {"loss": [3.0, 2.0, 1.5], "val_loss": [3.2, 2.4, 2.0]}
    trained.save(root / "bundle")
    return quantize_trained(trained, root / "bundle")


def test_report_is_one_self_contained_page_whose_charts_decode(vibration_bundle, tmp_path):
    from tinyfleet.cli import main

    out = tmp_path / "report.html"
    assert main(["report", "--bundle", str(vibration_bundle.directory), "--out", str(out)]) == 0
    page = out.read_text()
    for anchor in (*SECTIONS, "provenance"):
        assert f'<section id="{anchor}">' in page, anchor
    # self-contained: no external resource, every image is an embedded PNG that decodes
    assert not re.search(r'(src|href)="(https?:|file:|//)', page)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 6  # curves, metrics, ROC, layers, budget, explanation
    for data in images:
        not_blank, colours = png_is_not_blank(base64.b64decode(data))
        assert not_blank, colours
    # the ROC section states the int8 AUC it recomputed, equal to the bundle's own int8 AUC
    recomputed = float(re.search(r"int8 AUC recomputed here: ([0-9.]+)", page).group(1))
    assert recomputed == pytest.approx(vibration_bundle.metrics["int8"]["auc"], abs=1e-3)
    assert "Cortex-M4 class (STM32L432: 256 KB / 64 KB)" in page
    assert "no training curves" not in page


def test_report_renders_in_headless_chromium(vibration_bundle, tmp_path):
    from pipeline.report import write_report

    out = write_report(vibration_bundle.directory, tmp_path / "report.html")
    screenshot = tmp_path / "report.png"
    shot = run_chromium(out.as_uri(), f"--screenshot={screenshot}", "--window-size=1280,2400")
    assert screenshot.is_file(), shot.stderr[-2000:]
    print(f"report screenshot: {screenshot}")
    not_blank, colours = png_is_not_blank(screenshot.read_bytes())
    assert not_blank, f"screenshot looks blank ({colours} colours)"
    dom = run_chromium(out.as_uri(), "--dump-dom").stdout
    for anchor in SECTIONS:
        assert f'id="{anchor}"' in dom, anchor
    assert "Float vs int8" in dom and "ROC and anomaly scores (int8)" in dom
    # every embedded image decoded in the browser (a broken image has naturalWidth 0)
    with devtools_page(out.as_uri()) as browser:
        assert browser.wait_for("document.readyState === 'complete'")
        decoded = browser.evaluate(
            "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
        )
    assert len(decoded) >= 6 and all(decoded), decoded


def test_report_leads_with_the_answer_in_the_first_screen(vibration_bundle, tmp_path):
    """A 1280×800 screenshot shows the headline: int8 AUC, flash, RAM, MACs and MCU fit."""
    from pipeline.report import write_report

    out = write_report(vibration_bundle.directory, tmp_path / "report.html")
    auc = vibration_bundle.metrics["int8"]["auc"]
    with devtools_page(out.as_uri(), width=1280, height=800) as browser:
        assert browser.wait_for("document.readyState === 'complete'")
        first = browser.evaluate("document.querySelector('section').id")
        box = browser.evaluate(
            "(() => { const r = document.getElementById('headline').getBoundingClientRect();"
            " return [r.top, r.bottom, window.innerHeight]; })()"
        )
        text = browser.evaluate("document.getElementById('headline').innerText")
        screenshot = tmp_path / "headline.png"
        screenshot.write_bytes(browser.screenshot())
    print(f"report headline screenshot: {screenshot}")
    assert first == "headline"
    assert box[0] >= 0 and box[1] <= box[2], box  # entirely inside the first screen
    assert f"AUC {auc:.4g}" in text
    for words in ("FLASH", "RAM", "MACS PER INFERENCE", "held-out windows", "Fits:", "Cortex-M4"):
        assert words.lower() in text.lower(), (words, text)
    assert "int8 costs" in text and "tolerance" in text
    assert png_is_not_blank(screenshot.read_bytes())[0]
    page = out.read_text()
    assert "<pre>" not in page and "{&#x27;" not in page and "{&quot;" not in page  # no repr dumps


def test_report_without_evaluation_data_says_what_is_missing(vibration_bundle, tmp_path):
    from pipeline.report import write_report

    copy = tmp_path / "bundle"
    shutil.copytree(vibration_bundle.directory, copy)
    (copy / "evaluation.npz").unlink()
    page = write_report(copy).read_text()
    assert "needs evaluation.npz with held-out inputs" in page
    assert '<section id="budget">' in page  # the rest of the page is still there


def test_report_refuses_a_tampered_bundle(vibration_bundle, tmp_path):
    from tinyfleet.cli import main

    copy = tmp_path / "bundle"
    shutil.copytree(vibration_bundle.directory, copy)
    model = copy / "model.tflite"
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    assert main(["report", "--bundle", str(copy)]) == 2
    assert not (copy / "report.html").exists()


def test_report_roc_counts_tied_scores_like_sklearn():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from training.report_charts import roc_points

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 200).astype(float)  # int8 outputs tie often
    labels = rng.random(200) < 0.4
    fpr, tpr = roc_points(scores, labels)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(labels, scores))
