"""User-Mode Linux 6.1 on a host CPU with AVX-512 or AMX: the ptrace XSTATE shim.

There, without help, linux.uml dies at once: "userspace - ptrace set fp regs failed,
errno = 14", then "Kernel panic - not syncing: Attempted to kill init!". The host kernel
accepts a PTRACE_SETREGSET of NT_X86_XSTATE only at its own XSAVE size, and UML 6.1 uses a
fixed 832-byte one (fixed in later UML kernels). ``xstate_shim.c`` resizes those calls; it
is built here with the C compiler at boot and given to linux.uml with LD_PRELOAD. On a
host whose XSAVE area is 832 bytes anyway it changes nothing. Making NT_X86_XSTATE fail
instead (UML then falls back to FXSAVE) boots, but guest programs crash (seen: ls,
sha256sum, python3), so that is not a way.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("xstate_shim.c")


def needed() -> bool:
    """The host's CPU has XSAVE state beyond AVX (AVX-512 or AMX)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return False
    flags = next((line for line in lines if line.startswith("flags")), "").split()
    return "avx512f" in flags or "amx_tile" in flags


def build(out_dir: Path) -> Path | None:
    """The shim, compiled into ``out_dir``; None when not needed (or no compiler: then
    the boot fails as it would have, with UML's own message on the console)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not needed() or cc is None:
        return None
    out = out_dir / "xstate_shim.so"
    subprocess.run(
        [cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return out
