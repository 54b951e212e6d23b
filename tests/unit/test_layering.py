"""The walls between the rooms (issue 11): the server side and the client's network, state and
session never load Textual, and no two modules import each other at module level.

The server runs on machines without a terminal, and a later node that only relays needs none of
the UI; an import cycle makes the order modules load in matter, and the next split harder.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tuichat

PACKAGE = Path(tuichat.__file__).resolve().parent
# the rooms that must work without Textual (and its rendering library)
HEADLESS = (
    "tuichat.server",
    "tuichat.state",
    "tuichat.store",
    "tuichat.client_state",
    "tuichat.session",
    "tuichat.net",
)
UI_LIBRARIES = ("textual", "rich")


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    """The statements run at import: the body, and inside top-level `if` and `try` blocks, but
    not `if TYPE_CHECKING:` (those imports are for the type checker only)."""
    todo, run = list(tree.body), []
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                todo += node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                todo += handler.body
        else:
            run.append(node)
    return run


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports when it loads."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _module_level(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from tuichat.net import protocol` imports a module; `from x import Name` x
                whole = f"{base}.{alias.name}"
                found.add(whole if whole in known else base)
    return {module for module in found if module in known and module != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph`, as the modules along it, or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for child in sorted(graph[node]):
            if child in on_path:
                return [*path[path.index(child) :], child]
            if child not in done:
                cycle = visit(child)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_module_level_import_cycle() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert "tuichat.net.protocol" in graph["tuichat.server"]  # the graph sees real imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


# what each room must not import at module level (docs/architecture.md has the table): the server
# side and the client side meet only in the protocol module and the shared helpers
CLIENT_SIDE = ("tuichat.app", "tuichat.widgets", "tuichat.net.client", "tuichat.client_state",
               "tuichat.session", "tuichat.commands", "tuichat.inbox")  # fmt: skip
SERVER_SIDE = ("tuichat.server", "tuichat.state", "tuichat.store")
FORBIDDEN = {
    "tuichat.net.protocol": ("tuichat.",),  # but its numerics (ALLOWED)
    "tuichat.net.numerics": ("tuichat.",),
    "tuichat.store": ("tuichat.state", "tuichat.server", *CLIENT_SIDE),
    "tuichat.state": ("tuichat.server", *CLIENT_SIDE),
    "tuichat.server": CLIENT_SIDE,
    "tuichat.net.client": (*SERVER_SIDE, "tuichat.app", "tuichat.widgets", "tuichat.session"),
    # sans I/O: the protocol module only
    "tuichat.net.registration": (*SERVER_SIDE, *CLIENT_SIDE, "tuichat.tls", "tuichat.failures"),
    "tuichat.net.trust": (*SERVER_SIDE, *CLIENT_SIDE),
    "tuichat.client_state": (*SERVER_SIDE, "tuichat.app", "tuichat.widgets", "tuichat.net.client"),
    "tuichat.session": (*SERVER_SIDE, "tuichat.app", "tuichat.widgets", "tuichat.net.client"),
    "tuichat.app": SERVER_SIDE,
    "tuichat.widgets": (*SERVER_SIDE, "tuichat.app", "tuichat.net.client"),
}


# the exceptions to FORBIDDEN
ALLOWED = {"tuichat.net.protocol": ("tuichat.net.numerics",)}


def _in(name: str, rooms: tuple[str, ...]) -> bool:
    return any(name == room or name.startswith(room if room.endswith(".") else room + ".")
               for room in rooms)  # fmt: skip


def test_each_room_imports_only_what_it_may() -> None:
    known = modules()
    crossings = [
        f"{name} imports {imported}"
        for name, path in known.items()
        for imported in imports(name, path, known)
        for room, forbidden in FORBIDDEN.items()
        if _in(name, (room,)) and _in(imported, forbidden) and imported not in ALLOWED.get(name, ())
    ]
    assert crossings == []


def test_the_room_check_sees_a_crossing() -> None:
    assert _in("tuichat.state.core", ("tuichat.state",))
    assert not _in("tuichat.statex", ("tuichat.state",))
    assert _in("tuichat.limits", ("tuichat.",))


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_headless_rooms_do_not_load_textual() -> None:
    headless = sorted(
        name
        for name in modules()
        if any(name == room or name.startswith(room + ".") for room in HEADLESS)
    )
    assert "tuichat.net.client" in headless and "tuichat.server" in headless
    program = (
        "import importlib, sys\n"
        f"for name in {headless!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {UI_LIBRARIES!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_the_app_does_load_textual() -> None:
    """The check above can fail: the same program sees Textual once the app is imported."""
    program = "import sys, tuichat.app\nprint('textual' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "True"
