"""write_report: every file present and loadable, the manifest traces the data, thresholds from validation are
applied on test, and a failure mid-write leaves nothing behind."""

import hashlib
import json
import logging

import numpy as np
import pytest
from matplotlib import image as mpimg

from monitor_jax.core import assets
from monitor_jax.data import tasks
from monitor_jax.data.builders import suite
from monitor_jax.eval import evaluate, metrics, report
from monitor_jax.model import registry, weights

TASK = "requests/harmful"
FAST = dict(limit_per_task=24, max_len=256, buckets=(256,), batch_size=8, n_boot=200, progress=False)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A different tiny model: seed 1, saved as an HF dir."""
    m = registry.load("tiny-random-llama", seed=1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny-seed1"
    weights.save_hf(m.params, m.cfg, path, tokenizer=m.tokenizer)
    return path


@pytest.fixture(scope="module")
def two_models(ckpt):
    return evaluate.evaluate_models(["tiny-random-llama", f"hf:{ckpt}"], [TASK], command="monitor-jax eval --x", **FAST)


@pytest.fixture(scope="module")
def written(two_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report"
    return out, report.write_report(two_models, out)


def _strict_json(path):
    def bad(c):
        raise ValueError(f"non-JSON constant {c} in {path}")

    return json.loads(path.read_text(), parse_constant=bad)


def test_report_files_present_and_loadable(written, ckpt):
    out, rep = written
    assert _strict_json(out / "report.json") == rep
    tags = [m["tag"] for m in rep["models"]]
    assert tags == ["m0-tiny-random-llama", "m1-tiny-seed1"]
    for tag in tags:
        rows = (out / "scores" / tag / "requests-harmful__primary.jsonl").read_text().splitlines()
        assert len(rows) == 24
    assert set(rep["files"]["figures"]) == {"figures/auroc_heatmap.png", "figures/roc__requests-harmful.png",
                                            "figures/hist__requests-harmful.png"}
    for fig in rep["files"]["figures"]:
        data = (out / fig).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
        h, w = mpimg.imread(out / fig).shape[:2]
        assert h >= 200 and w >= 200
    assert sorted(p.name for p in out.iterdir()) == ["figures", "manifest.json", "report.json", "report.md", "scores"]
    assert not list(out.parent.glob(".report.*"))  # no temp dirs left beside it


def test_manifest_traces_assets_split_seed_tasks_and_models(written, ckpt):
    out, rep = written
    man = _strict_json(out / "manifest.json")
    assert man == rep["manifest"]
    assert {a["sha256"] for a in man["assets"].values()} == {a.sha256 for a in assets.ASSETS.values()}
    assert all("files_sha256" in a for a in man["assets"].values())
    assert man["suite"] == {"version": suite.VERSION, "split_seed": suite.SPLIT_SEED}
    assert man["seed"] == 0 and man["command"] == "monitor-jax eval --x" and man["monitor_jax_version"]
    (t,) = man["tasks"]
    assert t["name"] == TASK and t["version"] == tasks.get(TASK).version
    assert [p["template"] for p in t["prompts"]] == [tasks.get(TASK).prompt("primary").template]
    hf = man["models"][1]
    assert hf["kind"] == "hf"
    assert hf["config_sha256"] == hashlib.sha256((ckpt / "config.json").read_bytes()).hexdigest()
    assert hf["weight_files"] and all(hf["weight_files"][f] == (ckpt / f).stat().st_size for f in hf["weight_files"])
    ids = [ex.id for ex in tasks.examples(TASK, "validation", limit=24)]
    assert man["examples"][0]["ids_sha256"] == hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def test_markdown_has_the_tables_and_numbers(written, two_models):
    out, rep = written
    md = (out / "report.md").read_text()
    assert "| task | prompt | n pos / neg | `m0-tiny-random-llama` | `m1-tiny-seed1` |" in md
    for m in (0, 1):
        a = two_models.cell(m, TASK, "primary").summary["auroc"]
        assert metrics.fmt_ci(metrics.CI(a["estimate"], a["low"], a["high"])) in md
    (d,) = rep["paired_differences"]
    a0, a1 = (two_models.cell(m, TASK, "primary").summary["auroc"]["estimate"] for m in (0, 1))
    assert d["estimate"] == pytest.approx(a1 - a0) and d["estimate"] != 0.0
    assert f"{d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" in md
    for heading in ("## Paired differences", "## AUROC by input length", "## Truncation", "## Notes"):
        assert heading in md
    assert "monitor-jax eval --x" in md and "**seed**: 0" in md
    assert "figures/auroc_heatmap.png" in md


def test_threshold_from_validation_is_recorded_and_applied_on_test(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="monitor_jax.eval.evaluate"):
        res = evaluate.evaluate_models(["tiny-random-llama"], [TASK], split="test", **FAST)
    assert any("TEST split" in r.getMessage() for r in caplog.records)
    c = res.cell(0, TASK, "primary")
    val_ids = [ex.id for ex in tasks.examples(TASK, "validation", limit=24)]
    assert c.val["id"].tolist() == val_ids and not set(val_ids) & set(c.arrays["id"].tolist())
    thr = metrics.threshold_at_fpr(c.val["score"], c.val["label"], 0.01)
    assert c.threshold["value"] == thr and c.threshold["chosen_on"] == "validation"
    assert c.threshold["reliable"] is False  # 24 validation items: far below 1,000 negatives
    tpr, fpr = metrics.rates_at_threshold(c.arrays["score"], c.arrays["label"], thr)
    assert (c.summary["threshold"], c.summary["tpr_at_threshold"], c.summary["fpr_at_threshold"]) == (thr, tpr, fpr)
    assert c.summary["tpr_at_fpr_1pct"] is None  # too few negatives: n/a

    rep = report.write_report(res, tmp_path / "r")
    row = rep["results"][0]
    assert row["threshold"]["value"] == thr and row["tpr_at_threshold"] == tpr
    assert row["scores_file"] == "scores/m0-tiny-random-llama/requests-harmful__primary.jsonl"
    val_rows = (tmp_path / "r" / row["validation_scores_file"]).read_text().splitlines()
    assert [json.loads(x)["id"] for x in val_rows] == val_ids
    md = (tmp_path / "r" / "report.md").read_text()
    assert "TEST split" in md and "## Operating threshold" in md
    detail = next(line for line in md.splitlines() if line.startswith(f"| {TASK} | primary | `m0"))
    cells = [x.strip() for x in detail.strip("|").split("|")]
    assert cells[4] == "n/a" and cells[5] == "n/a"  # TPR@1 % and @0.1 % FPR
    section = md.split("## Operating threshold")[1].split("\n## ")[0]
    thr_line = next(line for line in section.splitlines() if line.startswith(f"| {TASK} | primary |"))
    assert f"| {thr:.4f} |" in thr_line


def test_failure_mid_write_leaves_no_partial_report(two_models, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report, "plot_heatmap", boom)  # runs after the score files are written
    with pytest.raises(RuntimeError, match="plot failed"):
        report.write_report(two_models, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []

    old = tmp_path / "old"
    old.mkdir()
    (old / "report.md").write_text("previous report")
    with pytest.raises(RuntimeError, match="plot failed"):
        report.write_report(two_models, old)
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    assert [p.name for p in old.iterdir()] == ["report.md"] and (old / "report.md").read_text() == "previous report"


def test_json_sanitizer_turns_nan_into_null():
    out = report._jsonable({"a": float("nan"), "b": np.float32(0.5), "c": (np.int64(3), float("inf")),
                            "d": np.array([1.0, np.nan])})
    assert out == {"a": None, "b": 0.5, "c": [3, None], "d": [1.0, None]}
    json.dumps(out, allow_nan=False)


def test_plotted_roc_curve_integrates_to_the_auroc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # many ties: the curve takes diagonal steps through them
    fpr, tpr = report.roc_curve(s, y)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.auroc(s, y), abs=1e-12)
