"""diagnose: MS-CHAP failure codes and SSTP status codes in words."""

from __future__ import annotations

import pytest

from sstp_pppd.core.messages import StatusCode
from sstp_pppd.diagnose import explain_auth_failure, status_name


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "E=691 R=0 C=0123456789ABCDEF0123456789ABCDEF V=3 M=Access denied",
            "MS-CHAPv2: wrong user name or password (server: Access denied)",
        ),
        ("E=648 R=0 V=3", "MS-CHAPv2: the password has expired"),
        ("E=649 R=0 V=3 M=", "MS-CHAPv2: the account has no dial-in permission"),
        ("E=999 R=1 V=3 M=odd one", "MS-CHAPv2: error 999 (server: odd one)"),
        # Not in the E= form at all: the server's text as it is.
        ("Authentication failed", "MS-CHAPv2: Authentication failed"),
        ("", "MS-CHAPv2"),
    ],
)
def test_explain_auth_failure(message: str, expected: str) -> None:
    assert explain_auth_failure("MS-CHAPv2", message) == expected


def test_a_non_numeric_code_is_not_explained() -> None:
    assert explain_auth_failure("EAP-MSCHAPv2", "E=abc M=x") == "EAP-MSCHAPv2: E=abc M=x"


def test_status_name() -> None:
    assert status_name(StatusCode.INVALID_FRAME_RECEIVED) == "INVALID_FRAME_RECEIVED"
    assert status_name(0x77) == "status 119"
