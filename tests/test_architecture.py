"""The package layering holds: no import cycle between doppel's packages (function-level imports
included), ops and io stand on core alone, stages never reach up into the workflow layer or the
shells, SQL lives in the store, and image files and BGR order live in io."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "doppel"
STAGES = ("extract", "train", "segment", "merge", "eval", "detect")
ABOVE_STAGES = ("workflow", "batch", "review", "cli", "demo")
MAX_LINES = 400
FOUNDATIONS = ("ops", "io")  # pure maths and media I/O: they import core and nothing else of doppel
# Reading, writing and coding image files, and OpenCV's BGR order, belong to doppel.io alone.
IMAGE_IO = re.compile(r"cv2\.(imread|imwrite|imencode|imdecode)\b|COLOR_(BGR|RGB)A?2(BGR|RGB)A?\b")


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(SRC.parent).with_suffix("").parts): p for p in SRC.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """Every ``doppel.*`` module a file imports, at any depth (function bodies included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("doppel"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("doppel"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (SRC / parts[1]).is_dir()) else None


def package_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        src = _package(name)
        if src is None:
            continue
        for target in _imports(path):
            dst = _package(target)
            if dst is not None and dst != src and (target in modules or target.rsplit(".", 1)[0] in modules):
                graph.setdefault(src, set()).add(dst)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_packages() -> None:
    graph = package_graph()
    assert graph, "found no imports at all"
    assert _cycle(graph) is None, f"package import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


@pytest.mark.parametrize("stage", STAGES)
def test_stages_stay_below_the_workflow_and_off_the_database(stage: str) -> None:
    modules = _modules()
    for name, path in modules.items():
        if _package(name) != stage:
            continue
        for target in _imports(path):
            assert _package(target) not in ABOVE_STAGES, f"{name} imports {target}"
            # Stages take data: the store's records, never a workspace or a query object.
            if target.startswith("doppel.store"):
                assert target.startswith("doppel.store.records"), f"{name} imports {target}"


@pytest.mark.parametrize("package", FOUNDATIONS)
def test_ops_and_io_import_only_core(package: str) -> None:
    for name, path in _modules().items():
        if _package(name) != package:
            continue
        for target in _imports(path):
            assert _package(target) in (package, "core", None), f"{name} imports {target}"


def test_image_files_and_bgr_only_in_io() -> None:
    for name, path in _modules().items():
        if _package(name) == "io":
            continue
        found = IMAGE_IO.search(path.read_text())
        assert found is None, f"{path.relative_to(SRC)} uses {found.group(0)}: code images with doppel.io.image"


def test_sql_only_in_the_store() -> None:
    sql = re.compile(r"\.execute(many|script)?\(|\bsqlite3\b")
    for name, path in _modules().items():
        if _package(name) == "store":
            continue
        assert not sql.search(path.read_text()), f"{path} runs SQL outside doppel.store"


def test_long_files_say_why() -> None:
    for path in SRC.rglob("*.py"):
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES:
            assert any("long because" in line.lower() for line in lines[:12]), \
                f"{path.relative_to(SRC)} has {len(lines)} lines and no reason at its top"
