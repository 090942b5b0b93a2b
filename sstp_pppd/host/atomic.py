"""Replacing a file so that a crash at any instant leaves either the old or the new one."""

from __future__ import annotations

import itertools
import os

_counter = itertools.count()


def write_atomic(path: str, text: str | bytes, *, mode: int = 0o600) -> None:
    """Write a temporary file beside ``path``, fsync it, rename it over, fsync the directory.

    The mode is set on the temporary file before any byte is written, so a secret or a
    record is never readable by others even for an instant.
    """
    data = text.encode() if isinstance(text, str) else text
    directory = os.path.dirname(os.path.abspath(path))
    # Named by pid and a counter, created exclusively: no tempfile import (start-up time).
    tmp = os.path.join(directory, f".tmp-{os.path.basename(path)}.{os.getpid()}.{next(_counter)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
