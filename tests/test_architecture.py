"""The direction of imports in the package (docs/architecture.md): Airflow layer -> engine ->
protocols <- stores/channels. Read from the source, so a lazy import inside a function counts
as much as one at the top of a module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "airflow_provider_castore_dam"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
AIRFLOW_LAYER = ("hooks", "operators", "sensors", "triggers", "get_provider_info")
SHARED = (
    "protocols",
    "errors",
    "retry",
    "timestamps",
    "partitions",
    "selection",
    "external_sort",
)
MAX_MODULE_LINES = 500


def _room(module: str) -> str:
    """The first part of a module's name inside the package: ``dam``, ``stores``..."""
    return module.split(".")[1] if module.startswith(f"{PACKAGE}.") else module.split(".")[0]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules_of(*rooms: str) -> list[Path]:
    paths = [ROOT / f"{room}.py" for room in rooms if (ROOT / f"{room}.py").exists()]
    for room in rooms:
        if (ROOT / room).is_dir():
            paths += sorted((ROOT / room).rglob("*.py"))
    return paths


def _rooms_imported(path: Path) -> set[str]:
    """The package's rooms ``path`` imports (``airflow`` for Airflow itself), but its own."""
    own = _room(".".join((PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)))
    found = set()
    for name in _imports(path):
        if name == "airflow" or name.startswith("airflow."):
            found.add("airflow")
        elif name.startswith(f"{PACKAGE}."):
            found.add(_room(name))
    return found - {own}


@pytest.mark.parametrize(
    "rooms, may_import",
    [
        (("dam",), set(SHARED)),
        (("stores",), set(SHARED)),
        (("channels",), set(SHARED)),
        (SHARED, set(SHARED)),
        # Not demo/: the demo stores are a store kind, the demo program is not a dependency.
        (AIRFLOW_LAYER, {"airflow", "dam", "stores", "channels", *SHARED, *AIRFLOW_LAYER}),
    ],
    ids=["engine", "stores", "channels", "shared", "airflow layer"],
)
def test_imports_point_one_way(rooms, may_import):
    paths = _modules_of(*rooms)
    assert len(paths) >= len(rooms)
    imported = {str(path.relative_to(ROOT)): _rooms_imported(path) for path in paths}
    wrong = {name: sorted(rooms - may_import) for name, rooms in imported.items()}
    assert {name: rooms for name, rooms in wrong.items() if rooms} == {}


def test_the_rule_sees_lazy_imports(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text(f"def f():\n    from {PACKAGE}.demo import x\n    import airflow.sdk\n")
    assert _imports(module) == {f"{PACKAGE}.demo", "airflow.sdk"}


def test_no_module_is_over_500_lines():
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in ROOT.rglob("*.py")
    }
    assert len(sizes) > 40
    assert {name: size for name, size in sizes.items() if size > MAX_MODULE_LINES} == {}
