"""The shipped model card is hub-ready: its YAML front matter parses, says what a model hub reads
(licence, pipeline tag, tags, model-index), and every metric it claims is the evaluation's own
number, read from the ``eval_summary.json`` shipped beside it (written by ``python -m eval``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

MODELS = Path(__file__).resolve().parents[1] / "tflite_models"
CARDS = sorted(MODELS.glob("*/MODEL_CARD.md"))


def front_matter(card: Path) -> dict:
    text = card.read_text()
    assert text.startswith("---\n"), f"{card}: no YAML front matter"
    end = text.index("\n---\n", 4)
    return yaml.safe_load(text[4:end])


@pytest.mark.parametrize("card", CARDS, ids=[c.parent.name for c in CARDS])
def test_front_matter_has_what_hubs_read(card):
    meta = front_matter(card)
    assert meta["license"] == "apache-2.0"
    assert meta["pipeline_tag"] == "image-to-image"
    assert {"bokeh", "tflite"} <= set(meta["tags"])
    (entry,) = meta["model-index"]
    assert entry["name"] == card.parent.name
    assert entry["results"] and all(r["metrics"] for r in entry["results"])


@pytest.mark.parametrize("card", CARDS, ids=[c.parent.name for c in CARDS])
def test_card_metrics_are_the_evaluations(card):
    """Each metric names the summary's model and metric (``name: "<model>/<metric>"``) and carries
    its value at the card's precision (2 decimals for dB, 4 for SSIM)."""
    summary = json.loads((card.parent / "eval_summary.json").read_text())
    metrics = [m for r in front_matter(card)["model-index"][0]["results"] for m in r["metrics"]]
    assert len(metrics) >= 3
    for m in metrics:
        model, metric = m["name"].split("/")
        measured = summary["models"][model][metric]
        digits = 4 if metric == "ssim" else 2
        assert m["value"] == round(measured, digits), (m, measured)
