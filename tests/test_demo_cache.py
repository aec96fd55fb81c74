"""`make demo` reuses a stage only when nothing it depends on changed: its key
covers the code it runs as well as its command line and configs, so an edited ``.py`` file re-runs
the stage instead of reporting the old numbers."""

import argparse
import ast
import shutil
import sys
from pathlib import Path

import pytest

from eval import demo

REPO = Path(__file__).resolve().parents[1]
ALL_STAGES = {"data", "stage1", "stage2", "export", "eval", "controls"}


def _args(out: Path) -> argparse.Namespace:
    return argparse.Namespace(
        out=out, train=8, val=2, size="64x96", seed=0, stage1_epochs=1, stage2_epochs=1, vgg=False
    )


def _keys(out: Path) -> dict[str, str]:
    # Each stage on its own (the same previous key), so a change shows in the stage whose inputs changed.
    return {s.name: demo._hash_inputs(s, "") for s in demo.build_stages(_args(out))}


def test_a_stage_reruns_when_its_code_changes_and_only_then(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "pkg" / "sub").mkdir(parents=True)
    (repo / "pkg" / "a.py").write_text("A = 1\n")
    (repo / "pkg" / "sub" / "b.py").write_text("B = 2\n")
    monkeypatch.setattr(demo, "REPO", repo)
    out, runs = tmp_path / "out", tmp_path / "runs.txt"
    stage = demo.Stage(
        "work",
        [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write('x')", str(runs)],
        [runs],
        [repo / "pkg"],
    )

    def run() -> int:
        demo.run_stage(stage, out, "", {})
        return len(runs.read_text())

    assert run() == 1
    assert run() == 1  # unchanged tree: reused
    (repo / "pkg" / "sub" / "b.py").touch()
    (repo / "pkg" / "__pycache__").mkdir()
    (repo / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert run() == 1  # a new mtime or bytecode is not a change of code
    (repo / "pkg" / "sub" / "b.py").write_text("B = 3\n")
    assert run() == 2  # an edited file re-runs the stage
    (repo / "pkg" / "c.py").write_text("")
    assert run() == 3  # so does a new one
    (repo / "pkg" / "c.py").rename(repo / "pkg" / "d.py")
    assert run() == 4  # and a renamed one


@pytest.fixture
def repo_copy(tmp_path, monkeypatch):
    """The project's packages and configs in a temporary folder that demo.py takes for the repo."""
    copy = tmp_path / "repo"
    for pkg in ("common", "training", "export", "eval"):
        shutil.copytree(REPO / pkg, copy / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(demo, "REPO", copy)
    monkeypatch.setattr(demo, "CONFIGS", copy / "training" / "configs")
    return copy


@pytest.mark.parametrize(
    ("edited", "stages"),
    [
        ("training/model.py", ALL_STAGES),  # the data stage runs training/ too (synth, renderers)
        ("training/renderers/lens.py", ALL_STAGES),
        ("export/pipeline.py", {"export", "eval", "controls"}),
        ("eval/evaluate.py", {"eval", "controls"}),
        ("common/metrics.py", ALL_STAGES),  # common/ is under every stage
        ("training/configs/lens.yaml", {"stage1", "stage2"}),
    ],
)
def test_editing_a_file_changes_the_keys_of_the_stages_that_run_it(edited, stages, repo_copy, tmp_path):
    out = tmp_path / "out"
    before = _keys(out)
    assert _keys(out) == before  # deterministic
    path = repo_copy / edited
    original = path.read_bytes()
    path.write_bytes(original + b"\n# edited\n")
    after = _keys(out)
    assert {name for name in before if after[name] != before[name]} == stages
    path.write_bytes(original)
    assert _keys(out) == before  # the same tree, the same keys


# ------------------------------------------------------------------ the lists cover the imports
def _module_files(name: str) -> list[Path]:
    """The project files Python runs to import ``name``: each package's __init__.py, then the module."""
    parts, files = name.split("."), []
    for i in range(1, len(parts) + 1):
        base = REPO.joinpath(*parts[:i])
        if (base / "__init__.py").is_file():
            files.append(base / "__init__.py")
        elif i == len(parts) and base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
        else:
            break
    return files


def _imported_files(entry: str) -> set[Path]:
    """Every project file reachable by import from module ``entry`` (run with ``-m``), including
    imports inside functions: a static over-approximation of the code a stage runs."""
    todo, seen = [entry, f"{entry}.__main__"], set()
    while todo:
        for f in _module_files(todo.pop()):
            if f in seen:
                continue
            seen.add(f)
            package = ".".join(f.relative_to(REPO).with_suffix("").parts[:-1])
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Import):
                    todo += [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:  # relative: from the importing module's package upwards
                        up = package.split(".")[: len(package.split(".")) - node.level + 1]
                        base = ".".join([*up, *([base] if base else [])])
                    todo += [base, *(f"{base}.{a.name}" for a in node.names)]
    return seen


def test_each_stage_key_covers_every_project_module_its_command_imports(tmp_path):
    for stage in demo.build_stages(_args(tmp_path / "out")):
        entry = stage.cmd[stage.cmd.index("-m") + 1]
        imported = _imported_files(entry)
        assert imported, entry
        missing = imported - set(demo._input_files(stage.inputs))
        assert not missing, (
            f"stage {stage.name} ({entry}) runs {sorted(str(m.relative_to(REPO)) for m in missing)}, "
            f"which its key does not cover: add them to STAGE_CODE in eval/demo.py"
        )
