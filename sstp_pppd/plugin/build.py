"""Build and install our pppd plugin, ``sstp-pppd-keys.so``.

The C source ships inside the package (``sstp-pppd-keys.c`` next to this
file), so an installed copy can build the plugin against the pppd headers of
the machine it runs on (Debian: ``ppp-dev``, /usr/include/pppd). pppd loads a
plugin only if the plugin's ``pppd_version`` string equals its own, so the
headers' version must be the running pppd's, and the plugin goes into that
pppd's plugin directory, ``/usr/lib/pppd/<version>/``.

``install_plugin(argv)`` is the command (``sstp-helper install-plugin``);
``build_plugin`` and the lookups below are its parts, also used by the tests
(which compile into a temporary directory, and against pppd 2.5's headers
fetched by ``scripts/fetch-pppd25.sh``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sstp_pppd.errors import ExitCode

PLUGIN_NAME = "sstp-pppd-keys.so"
SOURCE = Path(__file__).with_name("sstp-pppd-keys.c")
DEFAULT_INCLUDE_DIR = Path("/usr/include")
PLUGIN_BASE = Path("/usr/lib/pppd")
PPPD_CANDIDATES = ("/usr/sbin/pppd", "/sbin/pppd", "/usr/local/sbin/pppd")
CFLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Wextra")

_VERSION_25 = re.compile(r'#define\s+PPPD_VERSION\s+"([^"]+)"')
_VERSION_24 = re.compile(r'#define\s+VERSION\s+"([^"]+)"')
_PPPD_SAYS = re.compile(r"pppd version (\S+)")


class BuildError(Exception):
    """A missing compiler, header or pppd, or a failed compile: one line for the user."""


@dataclasses.dataclass(frozen=True, slots=True)
class Built:
    path: Path
    version: str  # the pppd version the plugin is for (its pppd_version string)


def headers_version(include_dir: Path) -> str:
    """The pppd version of the headers under ``include_dir/pppd``.

    2.5 has ``PPPD_VERSION`` in pppdconf.h; 2.4 has ``VERSION`` in patchlevel.h.
    """
    pppd_h = include_dir / "pppd" / "pppd.h"
    if not pppd_h.is_file():
        raise BuildError(
            f"pppd's plugin headers are missing ({pppd_h} not found): "
            "install them (Debian: apt-get install ppp-dev)"
        )
    for name, pattern in (("pppdconf.h", _VERSION_25), ("patchlevel.h", _VERSION_24)):
        header = include_dir / "pppd" / name
        if header.is_file():
            m = pattern.search(header.read_text(errors="replace"))
            if m:
                return m.group(1)
    raise BuildError(f"cannot tell the pppd version of the headers in {include_dir / 'pppd'}")


def find_compiler(cc: str | None = None) -> str:
    """The C compiler: ``cc`` if given, else $CC, else cc or gcc on PATH."""
    names = [cc] if cc else [n for n in (os.environ.get("CC"), "cc", "gcc") if n]
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BuildError(
        f"no C compiler found ({', '.join(names)}): install one (Debian: apt-get install gcc)"
    )


def find_pppd() -> str | None:
    for path in PPPD_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("pppd")


def running_pppd_version(pppd: str | None = None) -> str:
    """What ``pppd --version`` says (2.4.9 prints it on stderr)."""
    pppd = pppd or find_pppd()
    if pppd is None:
        raise BuildError("pppd is not installed (Debian: apt-get install ppp)")
    try:
        res = subprocess.run(
            [pppd, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"cannot run {pppd} --version: {e}") from None
    m = _PPPD_SAYS.search(res.stdout + res.stderr)
    if not m:
        raise BuildError(f"{pppd} --version did not say its version")
    return m.group(1)


def plugin_dir(version: str, base: Path = PLUGIN_BASE) -> Path:
    """Where pppd ``version`` looks for plugins given by name."""
    return base / version


def build_plugin(
    out_dir: Path,
    *,
    include_dir: Path = DEFAULT_INCLUDE_DIR,
    cc: str | None = None,
    source: Path = SOURCE,
) -> Built:
    """Compile the plugin into ``out_dir/sstp-pppd-keys.so`` against ``include_dir/pppd``."""
    version = headers_version(include_dir)
    compiler = find_compiler(cc)
    if not source.is_file():
        raise BuildError(f"the plugin source {source} is missing from the installed package")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / PLUGIN_NAME
    # Compile next to the target and rename: pppd processes that have the old
    # plugin mapped keep their copy intact.
    fd, tmp_name = tempfile.mkstemp(prefix=".sstp-pppd-keys.", suffix=".so", dir=out_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    argv = [compiler, *CFLAGS, f"-I{include_dir}", "-o", str(tmp), str(source)]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0:
            first = next((ln for ln in res.stderr.splitlines() if "error" in ln), "")
            raise BuildError(
                f"compiling {source.name} against {include_dir / 'pppd'} (pppd {version}) "
                f"failed: {first.strip() or f'{compiler} exited with {res.returncode}'}"
            )
        tmp.chmod(0o644)
        tmp.replace(out)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{compiler} did not finish within 120 s") from None
    finally:
        tmp.unlink(missing_ok=True)
    return Built(out, version)


def install(
    *,
    include_dir: Path = DEFAULT_INCLUDE_DIR,
    out_dir: Path | None = None,
    cc: str | None = None,
    pppd: str | None = None,
    plugin_base: Path = PLUGIN_BASE,
) -> Built:
    """Build into ``out_dir``, or into the running pppd's plugin directory.

    Without ``out_dir`` the headers must be the running pppd's version:
    pppd refuses a plugin built for another version.
    """
    if out_dir is not None:
        return build_plugin(out_dir, include_dir=include_dir, cc=cc)
    running = running_pppd_version(pppd)
    version = headers_version(include_dir)
    if version != running:
        raise BuildError(
            f"the pppd headers in {include_dir / 'pppd'} are for pppd {version}, "
            f"but the installed pppd is {running}: install the matching ppp-dev"
        )
    target = plugin_dir(running, plugin_base)
    if not target.is_dir():
        raise BuildError(f"pppd {running}'s plugin directory {target} does not exist")
    return build_plugin(target, include_dir=include_dir, cc=cc)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sstp-helper install-plugin",
        description=(
            "Build sstp-pppd-keys.so against the installed pppd headers and install it "
            "into the running pppd's plugin directory; prints its path."
        ),
    )
    p.add_argument(
        "--include-dir",
        type=Path,
        default=DEFAULT_INCLUDE_DIR,
        help="directory holding pppd/pppd.h (default: /usr/include)",
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        help="build into this directory instead of pppd's plugin directory",
    )
    p.add_argument("--cc", help="C compiler (default: $CC, cc or gcc)")
    return p


def install_plugin(argv: Sequence[str]) -> int:
    """``sstp-helper install-plugin [--include-dir D] [--out-dir D] [--cc CC]``."""
    args = parser().parse_args(list(argv))
    try:
        built = install(include_dir=args.include_dir, out_dir=args.out_dir, cc=args.cc)
    except BuildError as e:
        sys.stderr.write(f"sstp-helper install-plugin: {e}\n")
        return int(ExitCode.USAGE)
    except OSError as e:
        sys.stderr.write(f"sstp-helper install-plugin: {e.strerror}: {e.filename}\n")
        return int(ExitCode.USAGE)
    sys.stdout.write(f"{built.path}\n")
    return 0


def main() -> int:
    return install_plugin(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
