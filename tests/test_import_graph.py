"""Data flows forward: ``common`` → ``training`` → ``export`` → ``eval``.

A package may import from itself and from the packages before it, never from one after it
(``training`` nothing from ``export`` or ``eval``; ``export`` nothing from ``eval``; ``common`` none
of them). Read off the source with ``ast``, so an import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

LAYERS = ("common", "training", "export", "eval")


def imported_packages(source: str, package: str) -> set[str]:
    """The top-level project packages a module of ``package`` imports (relative imports stay inside)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(package if node.level else (node.module or "").split(".")[0])
    return found & set(LAYERS)


def back_edges(root: Path = REPO) -> list[str]:
    edges = []
    for rank, package in enumerate(LAYERS):
        for path in sorted((root / package).rglob("*.py")):
            for target in imported_packages(path.read_text(), package):
                if LAYERS.index(target) > rank:
                    edges.append(f"{path.relative_to(root)} imports {target}")
    return edges


def test_no_package_imports_a_later_stage():
    assert back_edges() == []


@pytest.mark.parametrize(
    ("source", "package", "expected"),
    [
        ("from eval.metrics import psnr", "training", {"eval"}),
        ("def f():\n    import export.gates\n", "training", {"export"}),  # a function-level import counts
        ("from . import model", "training", {"training"}),
        ("import numpy, torch.nn", "training", set()),
    ],
)
def test_the_check_sees_each_kind_of_import(source, package, expected):
    assert imported_packages(source, package) == expected


def test_the_check_fails_on_a_back_edge(tmp_path):
    """The main test can fail: a tree with one backwards import (the one training/module.py had
    before common/metrics.py) is caught."""
    for package in LAYERS:
        (tmp_path / package).mkdir()
    (tmp_path / "training" / "module.py").write_text("def f():\n    from eval.metrics import psnr\n")
    (tmp_path / "export" / "ok.py").write_text("from training.model import NAFNet\n")
    assert back_edges(tmp_path) == ["training/module.py imports eval"]
