"""Imports point one way, and each third-party library lives in one module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "loyalty_cli"

# library -> the only module (or package) allowed to import it
OWNERS = {
    "typer": "cli",
    "rich": "render",
    "babel": "formats",  # the shop's locale: render's tables, statements, messages
    "jinja2": "templates",  # the owner's message templates, in the sandbox
    "yaml": "rules",
    "sqlite3": "store",
    # A PostgreSQL ledger only: store/postgres.py, loaded for a postgresql:// --db.
    "psycopg": "store",
    "sqlite_utils": "-",  # a benchmark peer, never imported at run time
    # The CLV models' arithmetic (log-gamma, 2F1, a bounded optimiser): only
    # `report clv` loads them (see the start-up test below).
    "numpy": "clv",
    "scipy": "clv",
}
# Pure code: decides from what it is given, never reads a store, a clock or the
# environment, so replays and rule tests can run it with no database at all.
PURE = (
    "engine",
    "account",
    "lots",
    "tiers",
    "clock",
    "kinds",
    "models",
    "evaluator",
    "clv",
    "games",
)
IMPURE = {"sqlite3", "os", "time", "random", "loyalty_cli.store", "loyalty_cli.cli"}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def owner(module: Path) -> str:
    """The module's name, or its package's, inside loyalty_cli."""
    return module.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imports(module: Path) -> set[str]:
    """Absolute names of what a module imports (relative imports resolved)."""
    # The package a module is in: relative imports count up from it.
    package = module.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                prefix = ".".join(base + ([node.module] if node.module else []))
                found.add(prefix)
                found.update(f"{prefix}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module or "")
    return found


def test_each_library_is_imported_by_its_one_module_only() -> None:
    for module in modules():
        for name in imports(module):
            top = name.split(".")[0]
            if top in OWNERS:
                # A command group of the CLI (cli_customer.py) is part of the CLI.
                allowed = owner(module) == OWNERS[top] or (
                    OWNERS[top] == "cli" and owner(module).startswith("cli_")
                )
                assert allowed, f"{module} imports {top}"


def test_the_core_never_imports_the_cli_or_the_renderer() -> None:
    for module in modules():
        if owner(module) in ("cli", "__main__") or owner(module).startswith("cli_"):
            continue
        for name in imports(module):
            assert not name.startswith(("loyalty_cli.cli", "loyalty_cli.render")), (
                f"{module} imports {name}"
            )


def test_decisions_and_the_domain_are_pure() -> None:
    checked = 0
    for module in modules():
        if owner(module) not in PURE:
            continue
        checked += 1
        found = imports(module)
        assert not {n for n in found if n in IMPURE or n.startswith(tuple(IMPURE))}, (
            module,
            found & IMPURE,
        )
        assert "datetime.now" not in module.read_text(), module
    assert checked >= 15


def _ledger_env(tmp_path: Path) -> dict[str, str]:
    """An environment with a ledger in which C1 is enrolled."""
    import subprocess
    import sys

    rules = Path(__file__).resolve().parent.parent / "rules.example.yaml"
    env = {"LOYALTY_DB": str(tmp_path / "l.db"), "LOYALTY_RULES": str(rules)}
    env["PATH"] = "/usr/bin:/bin"
    subprocess.run(
        [sys.executable, "-m", "loyalty_cli", "enroll", "C1"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def _loaded(env: dict[str, str], args: list[str], names: set[str]) -> list[str]:
    """Which of `names` (modules, or top-level packages) a fresh interpreter has
    loaded after running `loyalty ARGS --json`."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from loyalty_cli.cli import app\n"
        "try:\n"
        "    app(sys.argv[2:] + ['--json'], prog_name='loyalty')\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "loaded = {m.split('.')[0] for m in sys.modules} | set(sys.modules)\n"
        "print(sorted(loaded & set(sys.argv[1].split(','))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, ",".join(sorted(names)), *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    shown: list[str] = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    return shown


def test_balance_loads_neither_yaml_nor_rich_nor_the_rules_engine(tmp_path: Path) -> None:
    # Start-up is a budget (see docs/benchmarks.md): the commands a till calls
    # most must not pay for PyYAML, Rich, the evaluator, hashing or migrations,
    # nor for numpy and scipy (half a second, for `report clv` alone).
    heavy = {"yaml", "rich", "loyalty_cli.evaluator", "loyalty_cli.rules", "pydantic", "hashlib"}
    heavy |= {"loyalty_cli.store.migrations", "loyalty_cli.store.legacy"}
    heavy |= {"numpy", "scipy", "loyalty_cli.clv", "babel", "jinja2"}
    heavy |= {"psycopg", "loyalty_cli.store.postgres"}
    assert _loaded(_ledger_env(tmp_path), ["balance", "C1"], heavy) == []


def test_only_report_clv_loads_numpy_and_scipy(tmp_path: Path) -> None:
    """The other reports start as fast as before; `report clv` does load them
    (so the probe above can tell)."""
    env = _ledger_env(tmp_path)
    models = {"numpy", "scipy"}
    assert _loaded(env, ["report", "customers"], models) == []
    assert _loaded(env, ["report", "clv"], models) == ["numpy", "scipy"]
