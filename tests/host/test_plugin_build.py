"""Our pppd plugin compiles against both pppd plugin APIs and pppd 2.4.9 loads it.

- pppd 2.4.9: the installed headers (Debian 12's ppp-dev, /usr/include/pppd).
- pppd 2.5.2: Debian 13's ppp-dev unpacked by scripts/fetch-pppd25.sh into
  .e2e/pppd25 (scripts/setup-e2e.sh runs it, so CI always has it); skipped
  only when that script has not run here.

Without ``SSTP_E2E=1`` a machine without ppp-dev or cc skips the compile
cases; with it (CI, after scripts/setup-e2e.sh) that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sstp_pppd.plugin import build

REPO = Path(__file__).resolve().parents[2]
INCLUDE_249 = Path("/usr/include")
INCLUDE_25 = REPO / ".e2e" / "pppd25" / "root" / "usr" / "include"
IN_CI = os.environ.get("SSTP_E2E") == "1"


def need(ok: bool, why: str) -> None:
    if not ok:
        if IN_CI:
            pytest.fail(f"{why} (SSTP_E2E=1: scripts/setup-e2e.sh should have provided it)")
        pytest.skip(why)


def dynamic_symbols(so: Path, *, defined: bool) -> dict[str, str]:
    """``nm -D`` of the plugin: name -> symbol type letter."""
    flag = "--defined-only" if defined else "--undefined-only"
    out = subprocess.run(["nm", "-D", flag, str(so)], capture_output=True, text=True, check=True)
    syms = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            syms[parts[-1].split("@")[0]] = parts[-2]
    return syms


def compile_against(include: Path, tmp_path: Path) -> build.Built:
    need(shutil.which("cc") is not None or shutil.which("gcc") is not None, "no C compiler")
    need(shutil.which("nm") is not None, "no nm (binutils)")
    return build.build_plugin(tmp_path, include_dir=include)


def check_exports(built: build.Built) -> None:
    assert built.path.name == "sstp-pppd-keys.so"
    defined = dynamic_symbols(built.path, defined=True)
    # pppd dlsym()s both: plugin_init to start it, pppd_version to refuse a mismatch.
    assert defined.get("plugin_init") == "T", defined
    assert defined.get("pppd_version") in ("D", "R"), defined
    assert b"\x00" + built.version.encode() + b"\x00" in built.path.read_bytes()


def test_compiles_against_pppd_249(tmp_path: Path) -> None:
    need((INCLUDE_249 / "pppd" / "pppd.h").is_file(), "no pppd 2.4.9 headers (ppp-dev)")
    built = compile_against(INCLUDE_249, tmp_path)
    assert built.version.startswith("2.4")
    check_exports(built)
    wanted = dynamic_symbols(built.path, defined=False)
    # The 2.4 API: globals and add_notifier, no 2.5 accessor functions.
    for sym in ("auth_up_notifier", "phasechange", "mppe_send_key", "mppe_recv_key",
                "mppe_keys_set", "ipparam", "add_options", "add_notifier"):  # fmt: skip
        assert sym in wanted, sym
    assert "ppp_add_notify" not in wanted


def test_compiles_against_pppd_25(tmp_path: Path) -> None:
    if not (INCLUDE_25 / "pppd" / "pppd.h").is_file():
        pytest.skip(f"no pppd 2.5 headers in {INCLUDE_25}: run scripts/fetch-pppd25.sh")
    built = compile_against(INCLUDE_25, tmp_path)
    assert built.version.startswith("2.5")
    check_exports(built)
    wanted = dynamic_symbols(built.path, defined=False)
    for sym in ("ppp_add_notify", "ppp_add_options", "mppe_get_send_key", "mppe_get_recv_key",
                "mppe_keys_isset", "ppp_ipparam"):  # fmt: skip
        assert sym in wanted, sym
    assert "mppe_send_key" not in wanted and "auth_up_notifier" not in wanted


def test_installed_pppd_loads_it_and_knows_sstp_sock(tmp_path: Path) -> None:
    """The real pppd dlopens the plugin, checks pppd_version, runs plugin_init,
    and then accepts ``sstp-sock``; an unknown option would be exit 2."""
    need((INCLUDE_249 / "pppd" / "pppd.h").is_file(), "no pppd 2.4.9 headers (ppp-dev)")
    pppd = build.find_pppd()
    need(pppd is not None, "pppd is not installed")
    if os.geteuid() != 0:
        pytest.skip("pppd loads plugins only for root")
    assert pppd is not None
    built = compile_against(INCLUDE_249, tmp_path)
    empty = tmp_path / "options"
    empty.write_text("")
    argv = [pppd, "file", str(empty), "plugin", str(built.path), "sstp-sock",
            str(tmp_path / "sock"), "notty", "dryrun", "nodetach"]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    out = res.stdout + res.stderr
    assert f"Plugin {built.path} loaded." in out, out
    assert "unrecognized option" not in out and "Couldn't load plugin" not in out, out
    # 0 where /dev/ppp exists; 4 (no kernel support) on these PPP-less hosts.
    assert res.returncode in (0, 4), out


def test_missing_headers_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = build.install_plugin(["--include-dir", str(tmp_path / "none"), "--out-dir", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pppd's plugin headers are missing" in err and "ppp-dev" in err
    assert not (tmp_path / "sstp-pppd-keys.so").exists()


def test_missing_compiler_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need((INCLUDE_249 / "pppd" / "pppd.h").is_file(), "no pppd 2.4.9 headers (ppp-dev)")
    rc = build.install_plugin(["--out-dir", str(tmp_path), "--cc", "no-such-cc"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err == (
        "sstp-helper install-plugin: no C compiler found (no-such-cc): "
        "install one (Debian: apt-get install gcc)\n"
    )


def test_headers_of_another_pppd_version_are_refused(tmp_path: Path) -> None:
    """pppd refuses a plugin whose pppd_version is not its own: say so before building."""
    if not (INCLUDE_25 / "pppd" / "pppd.h").is_file():
        pytest.skip(f"no pppd 2.5 headers in {INCLUDE_25}: run scripts/fetch-pppd25.sh")
    need(build.find_pppd() is not None, "pppd is not installed")
    running = build.running_pppd_version()
    if running.startswith("2.5"):
        pytest.skip("the installed pppd is 2.5")
    with pytest.raises(build.BuildError, match=rf"for pppd 2\.5\.\d+, but the installed pppd is "
                       rf"{running}: install the matching ppp-dev"):  # fmt: skip
        build.install(include_dir=INCLUDE_25, plugin_base=tmp_path)


def test_install_goes_to_the_running_pppds_plugin_dir(tmp_path: Path) -> None:
    need((INCLUDE_249 / "pppd" / "pppd.h").is_file(), "no pppd 2.4.9 headers (ppp-dev)")
    need(build.find_pppd() is not None, "pppd is not installed")
    running = build.running_pppd_version()
    (tmp_path / running).mkdir()
    built = build.install(include_dir=INCLUDE_249, plugin_base=tmp_path)
    assert built.path == tmp_path / running / "sstp-pppd-keys.so"
    assert built.path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in (tmp_path / running).iterdir()] == ["sstp-pppd-keys.so"]


def test_the_source_is_package_data() -> None:
    """An installed copy builds from its own files: the .c sits next to build.py and
    setup.cfg/MANIFEST.in ship it."""
    assert build.SOURCE.is_file()
    assert "sstp_pppd.plugin = *.c" in (REPO / "setup.cfg").read_text()
    assert "sstp_pppd/plugin/*.c" in (REPO / "MANIFEST.in").read_text()
