"""Which keys bind the call, and how long CALL_CONNECTED waits for pppd's.

The crypto binding (CALL_CONNECTED's Compound MAC, [MS-SSTP] 3.2.5.2) needs the HLAK of
the PPP authentication that just succeeded. :class:`KeyWait` turns the watcher's
success verdict (:class:`~.pppwatch.AuthSucceeded`) and the keys the pppd plugin sends
into one :class:`Binding`, now or after a wait:

- Keys from the plugin win, whenever they came (before the verdict or during the wait).
- Else the watcher's (derived from the password); a method without keys (PAP,
  CHAP-MD5, none) binds with zeros.
- A method whose keys exist but are unknown here (EAP-TLS, a password only pppd has),
  or any keyed method when a plugin is expected, waits up to ``key_wait`` seconds for
  the plugin; then it binds with what the watcher knows, zeros if nothing, which a
  verifying server rejects. ``key_wait=0`` never waits.
"""

from __future__ import annotations

import dataclasses

from . import crypto
from .client_events import KeySource
from .pppwatch import AuthSucceeded

__all__ = ["KEY_WAIT", "Binding", "KeyWait"]

#: How long CALL_CONNECTED waits for keys the watcher cannot know.
KEY_WAIT = 3.0
_ZERO_HLAK = bytes(crypto.HLAK_LENGTH)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """What CALL_CONNECTED binds with: the method, its HLAK, where the HLAK came from."""

    method: str
    hlak: bytes = dataclasses.field(repr=False)
    source: KeySource
    #: Why the keys were not known, when ``source`` is ``KeySource.ZERO``.
    why_unknown: str = ""


class KeyWait:
    """The keys of one call: :meth:`verdict`, :meth:`keys_received` and :meth:`due`
    each return the :class:`Binding` once it is decided, ``None`` while it is not.

    :attr:`deadline` is when :meth:`due` gives up waiting, ``None`` when not waiting.
    """

    __slots__ = ("_key_wait", "_plugin_expected", "_plugin_hlak", "_waiting", "deadline")

    def __init__(self, key_wait: float = KEY_WAIT) -> None:
        self._key_wait = key_wait
        #: A pppd plugin will send the keys (see :meth:`expect_plugin_keys`).
        self._plugin_expected = False
        self._plugin_hlak: bytes | None = None
        self._waiting: AuthSucceeded | None = None  # the success whose keys are awaited
        self.deadline: float | None = None

    def expect_plugin_keys(self) -> None:
        """Wait for the plugin's keys even when the password gives keys too."""
        self._plugin_expected = True

    def verdict(self, verdict: AuthSucceeded, now: float) -> Binding | None:
        """Authentication succeeded: the binding now, or ``None`` to wait for the plugin."""
        if self._plugin_hlak is not None:
            return Binding(method=verdict.method, hlak=self._plugin_hlak, source=KeySource.PLUGIN)
        # Wait for the plugin when pppd loads one (its keys win) or when only pppd knows
        # the keys; a method without keys has nothing to wait for.
        keyed = not verdict.keys_known or verdict.hlak != _ZERO_HLAK
        if self._key_wait > 0 and keyed and (self._plugin_expected or not verdict.keys_known):
            self._waiting = verdict
            self.deadline = now + self._key_wait
            return None
        return _without_plugin(verdict)

    def keys_received(self, send_key: bytes, recv_key: bytes) -> Binding | None:
        """The plugin's keys (see :func:`.crypto.hlak`): the binding if it waited for them."""
        self._plugin_hlak = crypto.hlak(send_key, recv_key)
        waiting = self._waiting
        if waiting is None:
            return None
        self._waiting = self.deadline = None
        return Binding(method=waiting.method, hlak=self._plugin_hlak, source=KeySource.PLUGIN)

    def due(self, now: float) -> Binding | None:
        """At :attr:`deadline`, no keys from pppd in time: the password's, else zeros."""
        if self.deadline is None or self.deadline > now:
            return None
        waiting, self._waiting, self.deadline = self._waiting, None, None
        return _without_plugin(waiting) if waiting is not None else None


def _without_plugin(verdict: AuthSucceeded) -> Binding:
    """What the watcher knows: the password's keys, else zeros."""
    if verdict.keys_known:
        source = KeySource.NONE if verdict.hlak == _ZERO_HLAK else KeySource.PASSWORD
        return Binding(method=verdict.method, hlak=verdict.hlak, source=source)
    why = verdict.why_unknown or "this method's keys come only from pppd"
    return Binding(method=verdict.method, hlak=_ZERO_HLAK, source=KeySource.ZERO, why_unknown=why)
