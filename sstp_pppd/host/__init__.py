"""Changes to the host (root only), each recorded with its inverse before it is made.

What ``sstp-helper`` (sstp_pppd/helper.py) and the transport use; nothing else here is API:

- settings: :func:`.connconf.load_connection`, :func:`.connconf.save_connection`,
  :func:`.connconf.remove_connection`, :class:`.connconf.Connection` (the format of
  ``/etc/sstp-pppd/NAME.conf`` is documented in :mod:`.connconf`);
  :func:`.paths.valid_name`; ``Paths().scripts_dir(NAME)`` for ``add`` and ``status --json``;
- ``install-hooks``: :func:`.hooks.install_hooks` (``/etc/ppp`` by default),
  :func:`.hooks.uninstall_hooks`; the hooks recognise a link by its ``ipparam`` = NAME,
  so the peers file needs ``ipparam NAME`` (and ``--ipparam NAME`` in its pty line);
- ``down``, after pppd has ended: :func:`.hookmain.undo` (``python -m sstp_pppd.host undo
  NAME``), which undoes everything recorded, kill switch included, and is idempotent;
- ``status``: :func:`.status.read_status` (keys documented in :mod:`.status`);
- the transport (composed in cli.py): :mod:`.apply`.

Submodules import pyroute2 only when a route is touched (start-up time matters).
"""
