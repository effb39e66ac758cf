"""Dependencies flow one way (docs/architecture.md): what a package's modules import, read from their source."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> dict[str, set[str]]:
    """For each module of `package` (a folder under the project), the modules it imports (absolute names)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
        found[str(path.relative_to(ROOT))] = names
    return found


def importing(package: str, forbidden: str) -> list[str]:
    return [f"{module}: {name}" for module, names in imported_modules(package).items() for name in sorted(names)
            if name == forbidden or name.startswith(forbidden + ".")]


@pytest.mark.parametrize(("package", "forbidden"), [
    ("boochat/arena", "boochat.chat"),  # chat and arena share boochat.relay, boochat.autosave, boochat.orphans
    ("providers", "boochat"),
    ("providers", "settings_app"),
    ("settings_app", "boochat"),
])
def test_a_package_imports_nothing_of_another_that_depends_on_it(package, forbidden):
    assert importing(package, forbidden) == []


def test_the_relay_chat_and_arena_share_imports_nothing_of_chat():
    shared = ["boochat/relay.py", "boochat/autosave.py", "boochat/orphans.py"]
    modules = imported_modules("boochat")
    assert [f"{m}: {n}" for m in shared for n in sorted(modules[m]) if n.startswith("boochat.chat")] == []
