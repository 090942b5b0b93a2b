"""host/ and transport/ meet only in cli.py: neither imports the other; pyroute2 is lazy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "sstp_pppd"


def imports(path: Path) -> set[str]:
    """Absolute module names imported by ``path`` (relative imports resolved)."""
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    package = parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return found


def test_transport_never_imports_host_and_host_never_imports_transport() -> None:
    # The resolver sees relative imports (so that this test can fail).
    assert "sstp_pppd.core.handshake" in imports(PKG / "transport" / "session.py")
    assert "sstp_pppd.host.connconf" in imports(PKG / "cli.py")
    for path in (PKG / "transport").glob("*.py"):
        assert not [m for m in imports(path) if m.startswith("sstp_pppd.host")], path
    for path in (PKG / "host").glob("*.py"):
        assert not [m for m in imports(path) if m.startswith("sstp_pppd.transport")], path


def test_pyroute2_is_not_imported_until_a_route_is_touched() -> None:
    code = (
        "import sys, sstp_pppd.cli, sstp_pppd.host.apply, sstp_pppd.host.hookmain;"
        "print('pyroute2' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
