"""drop_privileges: every id goes, no way back to root, and any failure is an error.

A drop cannot be undone, so each case runs in a child interpreter (as root: skipped
otherwise) and prints what /proc says about it afterwards.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")

PROBE = """
import ctypes, json, os, sys
from sstp_pppd.errors import ConfigError
from sstp_pppd.host import privileges
error = None
try:
    {call}
except ConfigError as exc:
    error = str(exc)
try:
    os.setuid(0)
    back = True
except PermissionError:
    back = False
dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
print(json.dumps({{"uid": os.getresuid(), "gid": os.getresgid(), "groups": os.getgroups(),
                  "error": error, "back_to_root": back, "dumpable": dumpable}}))
"""


def probe(call: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(call=call)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout)
    return result


NOBODY = pwd.getpwnam("nobody")


def test_user_drop_sets_every_id_and_root_does_not_come_back() -> None:
    got = probe("privileges.drop_privileges('nobody', None)")
    assert got["error"] is None
    assert got["uid"] == [NOBODY.pw_uid] * 3  # real, effective and saved
    assert got["gid"] == [NOBODY.pw_gid] * 3
    assert got["groups"] == []
    assert got["back_to_root"] is False
    # The kernel makes it non-dumpable: other processes of nobody cannot read its memory.
    assert got["dumpable"] == 0


def test_user_and_group() -> None:
    got = probe("privileges.drop_privileges('nobody', 'nogroup')")
    assert got["error"] is None
    assert got["gid"] == [65534] * 3  # nogroup, whatever nobody's own group is
    assert got["uid"] == [NOBODY.pw_uid] * 3


def test_group_only_keeps_the_user() -> None:
    got = probe("privileges.drop_privileges(None, 'nogroup')")
    assert got["error"] is None
    assert got["uid"] == [0, 0, 0]
    assert got["gid"] == [65534] * 3
    assert got["groups"] == []


def test_unknown_user_is_an_error_not_a_silent_root() -> None:
    got = probe("privileges.drop_privileges('no-such-user-xyz', None)")
    assert "cannot drop privileges to no-such-user-xyz" in str(got["error"])
    assert got["uid"] == [0, 0, 0]  # still root: the caller must end the run


def test_a_drop_that_left_the_saved_uid_root_is_refused() -> None:
    # What a plain seteuid() would leave: effective nobody, saved root, root can come back.
    got = probe(
        "os.setgroups([]); os.setresgid(65534, 65534, 65534); "
        "os.setresuid(65534, 65534, 0); privileges._check(65534, 65534)"
    )
    assert "privileges not dropped: uids" in str(got["error"])


def test_nothing_asked_nothing_done() -> None:
    got = probe("privileges.drop_privileges(None, None)")
    assert got["error"] is None
    assert got["uid"] == [0, 0, 0]
    assert got["dumpable"] == 1
