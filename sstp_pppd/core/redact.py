"""Where a password sits in a URL the user typed, and the URL without it (pure).

Users do not percent-encode: a password may hold ``/``, ``?``, ``#``, ``@`` or ``:``. So
the userinfo is taken to run from after ``scheme://`` (or the start) to the *last* ``@``,
and the password from the first ``:`` in it. When the text has an ``@`` in a path
instead, this hides too much, never too little.
"""

from __future__ import annotations

__all__ = ["password_span", "redact_url"]


def password_span(text: str) -> tuple[int, int] | None:
    """``(start, end)`` of the password in ``text``, or None if it carries none."""
    scheme = text.find("://")
    start = scheme + 3 if scheme >= 0 else 0
    at = text.rfind("@")
    if at < start:
        return None
    colon = text.find(":", start, at)
    if colon < 0:
        return None
    return colon + 1, at


def redact_url(text: str) -> str:
    """``text`` with the password of its userinfo replaced by ``***``."""
    span = password_span(text)
    if span is None:
        return text
    return text[: span[0]] + "***" + text[span[1] :]
