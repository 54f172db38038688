"""The layer contracts (pyproject.toml, [tool.importlinter]) hold on the tree, and an upward
import — the client importing the service, the daemon and the service importing each other, the
contract (its recording format too) importing the daemon — makes `lint-imports` fail (what `./run_tests.sh` runs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("frankateach", "robot_formats", "oculus_server", "vla_server", "vla_client")
LINT = [sys.executable, "-c",
        "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())", "--no-cache"]


def _copy(tmp: Path) -> Path:
    tree = tmp / "tree"
    tree.mkdir()
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tree / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.onnx", "static"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run(LINT, cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    out = _lint(_copy(tmp_path))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("vla_client/errors.py", "import vla_server.constants", "The client imports neither"),
        ("oculus_server/errors.py", "import vla_server.auth.store", "The daemon never imports the service"),
        ("vla_server/web/recordings.py", "import oculus_server.replay.plot", "The service never imports the daemon"),
        ("robot_formats/recording/reader.py", "import oculus_server.errors", "Layers"),
        ("robot_formats/rotations.py", "import oculus_server.errors", "Layers"),
        ("robot_formats/image.py", "import scipy.spatial", "neither MuJoCo nor scipy"),
    ],
)
def test_an_upward_import_breaks_the_build(tmp_path: Path, module: str, line: str, contract: str) -> None:
    tree = _copy(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # upward\n")
    out = _lint(tree)
    assert out.returncode != 0, out.stdout[-3000:]
    broken = out.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, out.stdout[-3000:]
