"""Imports point one way, and each third-party library lives in one module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "loyalty_cli"

# library -> the only module allowed to import it
OWNERS = {
    "typer": "cli",
    "rich": "render",
    "yaml": "rules",
    "sqlite3": "ledger",
    "sqlite_utils": "ledger",
}


def imports(module: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y -> loyalty_cli.x
                found.add("loyalty_cli." + (node.module or ""))
                found.update(f"loyalty_cli.{alias.name}" for alias in node.names if not node.module)
            else:
                found.add(node.module or "")
    return found


def test_each_library_is_imported_by_its_one_module_only() -> None:
    for module in PACKAGE.glob("*.py"):
        for name in imports(module):
            top = name.split(".")[0]
            if top in OWNERS:
                assert module.stem == OWNERS[top], f"{module.name} imports {top}"


def test_the_core_never_imports_the_cli_or_the_renderer() -> None:
    for module in PACKAGE.glob("*.py"):
        if module.stem in ("cli", "__main__"):
            continue
        for name in imports(module):
            assert name not in ("loyalty_cli.cli", "loyalty_cli.render"), (
                f"{module.name} imports {name}"
            )


def test_the_evaluator_is_pure() -> None:
    banned = {"sqlite3", "os", "time", "loyalty_cli.ledger", "random"}
    assert not imports(PACKAGE / "evaluator.py") & banned
    assert "datetime.now" not in (PACKAGE / "evaluator.py").read_text()


def test_balance_loads_neither_yaml_nor_rich_nor_the_rules_engine(tmp_path: Path) -> None:
    # Start-up is a budget (see docs/benchmarks.md): the commands a till calls
    # most must not pay for PyYAML, Rich or the evaluator.
    import subprocess
    import sys

    db = tmp_path / "l.db"
    rules = Path(__file__).resolve().parent.parent / "rules.example.yaml"
    env = {"LOYALTY_DB": str(db), "LOYALTY_RULES": str(rules), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, "-m", "loyalty_cli", "enroll", "C1"],
        env=env,
        check=True,
        capture_output=True,
    )
    probe = (
        "import sys\n"
        "from loyalty_cli.cli import app\n"
        "try:\n"
        "    app(['balance', 'C1', '--json'], prog_name='loyalty')\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "loaded = {m.split('.')[0] for m in sys.modules} | set(sys.modules)\n"
        "print(sorted(loaded & {'yaml', 'rich', 'loyalty_cli.evaluator', 'loyalty_cli.rules', 'pydantic'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
