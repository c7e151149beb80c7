"""The package layers, read from the source: service and training meet only through the shared core."""

from __future__ import annotations

import ast

from funnelcast.core.settings import PROJECT_ROOT


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every module each file under ``package`` imports, at any depth (imports inside functions too)."""
    found: dict[str, set[str]] = {}
    root = PROJECT_ROOT / package
    for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(PROJECT_ROOT))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return [
        f"{file} imports {name}"
        for file, names in imported_modules(package).items()
        for name in sorted(names)
        if name.split(".")[0] in forbidden or any(name.startswith(f) for f in forbidden if "." in f)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    ]


def test_the_walker_sees_imports_inside_functions_too() -> None:
    # the runtime imports the Feast store edge inside ``Runtime.start``
    assert any(n.startswith("features.store") for n in imported_modules("service")["service/runtime.py"])


def test_service_never_imports_training() -> None:
    assert offenders("service", ("training",)) == []


def test_training_never_imports_service() -> None:
    assert offenders("training", ("service",)) == []


def test_the_core_imports_neither_service_training_nor_the_cli() -> None:
    # the core may read the pure name catalogue (milestones), which itself imports no project module
    forbidden = ("service", "training", "features", "funnelcast.cli", "funnelcast.cli_import")
    assert offenders("funnelcast/core", forbidden, allowed=("features.catalog",)) == []
    assert offenders("features/catalog.py", ("service", "training", "features", "funnelcast")) == []
