"""The layers hold: the sans-IO core does no I/O and needs nothing outside itself.

Read from the source with :mod:`ast`, so an import inside a function counts as much as
one at the top, and nothing has to be imported to be checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sstp_pppd"

#: Modules that do I/O, keep time, draw randomness or log: the core takes all of these
#: from its caller (bytes, ``now``, random values) and reports in events instead.
FORBIDDEN_IN_CORE = frozenset(
    {
        "os",
        "socket",
        "asyncio",
        "time",
        "subprocess",
        "select",
        "ssl",
        "logging",
        "random",
        "threading",
        "pyroute2",
        "psutil",
    }
)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, absolute (relative ones resolved), with its line."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return imported(path.read_text(), ".".join(parts[:-1]))


def imported(source: str, package: str) -> list[tuple[int, str]]:
    """Every module ``source``, a module of ``package``, imports, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                parent = ".".join(base)
                target = f"{parent}.{node.module}" if node.module else parent
                if node.module is None:
                    # "from . import a, b": each name is a module of that package.
                    found.extend((node.lineno, f"{parent}.{alias.name}") for alias in node.names)
                    continue
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return found


def sources(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def test_the_layers_exist() -> None:
    # A renamed directory must not make the checks below pass vacuously.
    assert len(sources("core")) >= 8
    assert len(sources("transport")) >= 5


@pytest.mark.parametrize("path", sources("core"), ids=lambda p: p.name)
def test_core_is_sans_io_and_self_contained(path: Path) -> None:
    bad = []
    for line, name in imports(path):
        top = name.split(".")[0]
        if top in FORBIDDEN_IN_CORE:
            bad.append(f"{path.name}:{line}: imports {name} (I/O, time, randomness or logging)")
        elif top == "sstp_pppd" and not name.startswith("sstp_pppd.core"):
            bad.append(f"{path.name}:{line}: imports {name}, outside the core")
    assert not bad, "\n".join(bad)


#: transport/ knows nothing of the host: the command line composes them (cli.py,
#: runsession.py) and hands the session what it needs, such as the privilege drop.
HOST_USERS: frozenset[str] = frozenset()


@pytest.mark.parametrize(
    "path", [p for p in sources("transport") if p.name not in HOST_USERS], ids=lambda p: p.name
)
def test_transport_does_not_touch_the_host(path: Path) -> None:
    bad = [
        f"{path.name}:{line}: imports {name}"
        for line, name in imports(path)
        if name == "sstp_pppd.host" or name.startswith("sstp_pppd.host.")
    ]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_function_level_and_relative_imports() -> None:
    # The checks above can fail: what they would see in a core module that cheats.
    source = (
        "from . import crypto\n"
        "from .messages import decode\n"
        "def f():\n"
        "    import os.path\n"
        "    from ..transport import tls\n"
        "    from .. import errors\n"
    )
    assert {name for _, name in imported(source, "sstp_pppd.core")} == {
        "sstp_pppd.core.crypto",
        "sstp_pppd.core.messages",
        "os.path",
        "sstp_pppd.transport",
        "sstp_pppd.errors",
    }


def test_the_cores_public_names_resolve() -> None:
    import sstp_pppd.core as core

    for name in core.__all__:
        assert getattr(core, name) is not None, name
    with pytest.raises(AttributeError):
        _ = core.not_a_public_name
    assert sorted(core.__all__) == sorted(core._EXPORTS)
