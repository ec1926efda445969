"""colab/quickstart.ipynb: committed without outputs, and it runs end to end (nbclient, a fresh kernel) with its
parameters cell replaced by tiny settings, leaving finite AUROCs for both models and a plotted figure."""
import json
import math
import pathlib

import nbformat
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "colab" / "quickstart.ipynb"

TINY_PARAMETERS = """\
MODEL = "tiny-random-llama"
TRAIN_TASK = "requests/harmful"
TRAIN_ITEMS = 16
EVAL_TASKS = ("requests/harmful", "toxicity/threat")
EVAL_ITEMS = 12
STEPS = 3
BATCH = 4
TOP_K = 1
LR = 1e-3
MAX_LEN = 128
N_BOOT = 50
SEED = 0
WORKDIR = "quickstart-run"
"""

# Appended after the notebook's last cell: what it left behind, as one JSON line.
PROBE = """\
import json
print(json.dumps({"auroc": AUROC, "steps": int(summary["step"]),
                  "policy": {"untrained": base_policy.score.tolist(), "trained": trained_policy.score.tolist()}}))
"""


def _read() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def _parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    return cells[0]


def test_committed_notebook_has_no_outputs_and_names_every_parameter():
    nb = _read()
    nbformat.validate(nb)
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, f"cell {c.id}: outputs are stripped in git"
    source = _parameters_cell(nb).source
    names = {line.split("=", 1)[0].strip() for line in TINY_PARAMETERS.splitlines()}
    assert names == {line.split("=", 1)[0].strip() for line in source.splitlines()
                     if "=" in line and not line.startswith("#")}, "the test's tiny settings cover every parameter"
    assert "tests/test_notebook.py replaces this cell" in source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "configs/" not in code and "sys.path" not in code, "the notebook imports only the installed package"


def test_notebook_runs_with_tiny_settings(tmp_path, monkeypatch):
    nb = _read()
    _parameters_cell(nb).source = TINY_PARAMETERS
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    monkeypatch.delenv("XLA_FLAGS", raising=False)  # one host device, as on a Colab CPU
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "xla"))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    out = json.loads(nb.cells[-1].outputs[-1]["text"].strip().splitlines()[-1])
    assert set(out["auroc"]) == {"requests/harmful", "toxicity/threat"}
    for task, pair in out["auroc"].items():
        assert set(pair) == {"untrained", "trained"}
        for v in pair.values():
            assert v is not None and math.isfinite(v) and 0.0 <= v <= 1.0, (task, pair)
    assert out["steps"] == 3
    base, trained = out["policy"]["untrained"], out["policy"]["trained"]
    assert len(base) == len(trained) == 8 and all(0.0 <= s <= 1.0 for s in base + trained)
    assert base != trained, "the compared model is the trained one, not the base model loaded twice"
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, "the plot cell shows one figure"
    assert (tmp_path / "quickstart-run" / "export" / "step_3" / "model.safetensors").exists()
