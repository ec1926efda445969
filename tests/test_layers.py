"""The package keeps its layers (DESIGN.md §3); the checker itself fails on each kind of violation."""
import pathlib
import textwrap

from tests import layering

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "monitor_jax"


def test_the_package_imports_only_downward_and_has_no_cycles():
    assert layering.violations(PACKAGE) == []


def _package(tmp_path, files: dict[str, str]) -> pathlib.Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


CLEAN = {
    "core/__init__.py": "", "core/io.py": "import json\n",
    "model/__init__.py": "", "model/m.py": "from pkg.core import io\n",
    "data/__init__.py": "", "data/d.py": "from pkg.model import m\n",
    "train/__init__.py": "", "train/t.py": "from pkg.data import d\n",
    "eval/__init__.py": "", "eval/e.py": "from ..data import d\n",
    "experiment/__init__.py": "", "experiment/x.py": "from pkg.train import t\nfrom pkg.eval import e\n",
    "main.py": "from pkg.experiment import x\n",
}


def test_checker_passes_a_clean_synthetic_package(tmp_path):
    assert layering.violations(_package(tmp_path, CLEAN)) == []


def test_checker_finds_each_kind_of_violation(tmp_path):
    cases = {
        "upward (top level)": ({"model/m.py": "from pkg.data import d\n"}, "pkg.model.m -> pkg.data.d: upward"),
        "upward (inside a function)": ({"core/io.py": "def f():\n    from pkg.model import m\n"},
                                       "pkg.core.io -> pkg.model.m: upward"),
        "upward (TYPE_CHECKING)": ({"data/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                 "    from pkg.experiment import x\n"},
                                   "pkg.data.d -> pkg.experiment.x: upward"),
        "upward (relative)": ({"train/t.py": "from ..experiment import x\n"}, "pkg.train.t -> pkg.experiment.x: upward"),
        "train imports eval": ({"train/t.py": "import pkg.eval.e\n"}, "pkg.train.t -> pkg.eval.e: sibling layers"),
        "eval imports train": ({"eval/e.py": "from pkg.train import t\n"}, "pkg.eval.e -> pkg.train.t: sibling"),
        "cycle in one layer": ({"data/a.py": "from pkg.data import b\n", "data/b.py": "def g():\n"
                                "    from pkg.data import a\n"}, "cycle: pkg.data.a -> pkg.data.b -> pkg.data.a"),
        "module in no layer": ({"stray.py": "x = 1\n"}, "pkg.stray: in no layer"),
    }
    for kind, (files, expected) in cases.items():
        found = layering.violations(_package(tmp_path / kind.replace(" ", "_"), {**CLEAN, **files}))
        assert any(v.startswith(expected) for v in found), (kind, found)
