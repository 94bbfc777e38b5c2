"""Project-wide rules: the pure core stays pure, ruff and mypy stay clean, no runtime use of ../shared."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xds_hub"
IMPURE = ("lxml", "sqlalchemy", "flask", "werkzeug", "pynetdicom", "gunicorn", "zeep", "requests")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_package_imports_no_io_library() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & set(IMPURE))
        for p in (PACKAGE / "domain").rglob("*.py")
        if _imports(p) & set(IMPURE)
    }
    assert offenders == {}


def test_runtime_code_never_refers_to_shared_folder() -> None:
    hits = [
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if "shared/oracle" in p.read_text(encoding="utf-8") or "../shared" in p.read_text(encoding="utf-8")
    ]
    assert hits == []


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed")
    result = subprocess.run(
        [ruff, "check", "xds_hub", "tests", "conformance", "bench"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
