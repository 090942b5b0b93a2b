"""Protocol codes turned into words a user can act on."""

from __future__ import annotations

from .core.messages import status_name

__all__ = ["explain_auth_failure", "status_name"]

#: MS-CHAP failure codes (RFC 2759 6; Windows RAS error numbers).
_MSCHAP_ERRORS = {
    646: "logons are not allowed at this time",
    647: "the account is disabled",
    648: "the password has expired",
    649: "the account has no dial-in permission",
    691: "wrong user name or password",
    709: "changing the password failed",
}


def explain_auth_failure(method: str, message: str) -> str:
    """``MS-CHAPv2: wrong user name or password (server: Access denied)`` from E=/M= fields."""
    fields = dict(
        part.split("=", 1) for part in message.split() if "=" in part and part[:2] != "M="
    )
    text = message.split("M=", 1)[1].strip() if "M=" in message else ""
    code = fields.get("E", "")
    reason = _MSCHAP_ERRORS.get(int(code), f"error {code}") if code.isdigit() else ""
    if not reason:
        return f"{method}: {message}" if message else method
    return f"{method}: {reason}" + (f" (server: {text})" if text else "")
