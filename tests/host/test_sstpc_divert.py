"""replace-sstpc / restore-sstpc with the real dpkg-divert, on a throw-away root filesystem.

Every call passes ``--root`` (dpkg-divert's own option: the admin directory and the files are
under it), and each test checks that this machine's diversions and sstpc did not change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sstp_pppd.errors import ConfigError
from sstp_pppd.host import sstpc_divert
from sstp_pppd.host.sstpc_divert import main_replace, main_restore, main_status

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-divert") is None, reason="needs dpkg-divert (Debian)"
)

ORIGINAL = "#!/bin/sh\necho sstp-client\n"


def _fingerprint() -> tuple[bytes, object]:
    div = Path("/var/lib/dpkg/diversions")
    real = Path("/usr/sbin/sstpc")
    digest = hashlib.sha256(div.read_bytes()).digest() if div.exists() else b""
    st = os.lstat(real) if os.path.lexists(real) else None
    return digest, (st.st_ino, st.st_mtime_ns) if st else None


@pytest.fixture(autouse=True)
def _this_machine_is_untouched() -> Iterator[None]:
    before = _fingerprint()
    yield
    assert _fingerprint() == before


def make_root(tmp_path: Path, with_sstpc: bool = True) -> Path:
    """A Debian 12 style root: merged /usr (sbin -> usr/sbin) and dpkg's admin directory."""
    root = tmp_path / "root"
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/local/sbin").mkdir(parents=True)
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "sbin").symlink_to("usr/sbin")
    if with_sstpc:
        f = root / "usr/sbin/sstpc"
        f.write_text(ORIGINAL)
        f.chmod(0o755)
    return root


@pytest.fixture
def target(tmp_path: Path) -> Path:
    t = tmp_path / "venv/bin/sstp-pppd"
    t.parent.mkdir(parents=True)
    t.write_text("#!/bin/sh\nexit 0\n")
    t.chmod(0o755)
    return t


def test_replace_then_restore(tmp_path: Path, target: Path) -> None:
    root = make_root(tmp_path)
    st = sstpc_divert.replace_sstpc(root, target)
    assert st.replaced and st.original_present
    assert os.readlink(root / "usr/sbin/sstpc") == str(target)
    assert (root / "usr/sbin/sstpc.distrib").read_text() == ORIGINAL
    # NetworkManager's first candidate, /sbin/sstpc, is the same file with merged /usr.
    assert st.nm_runs == "/sbin/sstpc"
    assert os.path.samefile(root / "sbin/sstpc", target)
    diversions = (root / "var/lib/dpkg/diversions").read_text().split("\n")
    assert diversions[:3] == ["/usr/sbin/sstpc", "/usr/sbin/sstpc.distrib", ":"]
    # Idempotent.
    assert sstpc_divert.replace_sstpc(root, target) == st

    back = sstpc_divert.restore_sstpc(root)
    assert not back.replaced and back.diverted_to is None and back.link_target is None
    assert (root / "usr/sbin/sstpc").read_text() == ORIGINAL
    assert not (root / "usr/sbin/sstpc.distrib").exists()
    assert (root / "var/lib/dpkg/diversions").read_text().strip() == ""
    assert sstpc_divert.restore_sstpc(root) == back


def test_replace_without_sstp_client(tmp_path: Path, target: Path) -> None:
    root = make_root(tmp_path, with_sstpc=False)
    st = sstpc_divert.replace_sstpc(root, target)
    assert st.replaced and not st.original_present
    back = sstpc_divert.restore_sstpc(root)
    assert back.nm_runs is None and back.diverted_to is None


def test_a_packages_diversion_is_left_alone(tmp_path: Path, target: Path) -> None:
    root = make_root(tmp_path)
    args = ["--package", "other", "--divert", "/usr/sbin/sstpc.other", "--add", "/usr/sbin/sstpc"]
    assert sstpc_divert._dpkg_divert(root, *args).returncode == 0
    before = (root / "var/lib/dpkg/diversions").read_text()
    with pytest.raises(ConfigError, match="already diverted"):
        sstpc_divert.replace_sstpc(root, target)
    with pytest.raises(ConfigError, match="not by replace-sstpc"):
        sstpc_divert.restore_sstpc(root)
    assert (root / "var/lib/dpkg/diversions").read_text() == before
    assert (root / "usr/sbin/sstpc").read_text() == ORIGINAL


def test_restore_refuses_a_file_that_is_not_our_link(tmp_path: Path, target: Path) -> None:
    root = make_root(tmp_path)
    sstpc_divert.replace_sstpc(root, target)
    link = root / "usr/sbin/sstpc"
    link.unlink()
    link.write_text("someone else's\n")
    with pytest.raises(ConfigError, match="not a link to sstp-pppd"):
        sstpc_divert.restore_sstpc(root)
    assert link.read_text() == "someone else's\n"
    assert sstpc_divert.status(root).diverted_to == "/usr/sbin/sstpc.distrib"


def test_replace_refuses_a_target_that_is_not_executable(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    with pytest.raises(ConfigError):
        sstpc_divert.replace_sstpc(root, tmp_path / "nothing/sstp-pppd")
    assert sstpc_divert.status(root).diverted_to is None


def test_command_lines(tmp_path: Path, target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path)
    assert main_replace(["--root", str(root), "--target", str(target)]) == 0
    out = capsys.readouterr().out
    assert "diverted to /usr/sbin/sstpc.distrib (LOCAL)" in out
    assert f"/usr/sbin/sstpc -> {target}" in out
    assert main_status(["--root", str(root)]) == 0
    assert "NetworkManager-sstp runs: /sbin/sstpc" in capsys.readouterr().out
    assert main_restore(["--root", str(root)]) == 0
    assert "/usr/sbin/sstpc is not diverted" in capsys.readouterr().out
    assert main_replace(["--root", str(root), "--target", str(target)]) == 0
    (root / "usr/sbin/sstpc").unlink()
    (root / "usr/sbin/sstpc").write_text("x")
    capsys.readouterr()
    assert main_replace(["--root", str(root), "--target", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a link to sstp-pppd" in err
