"""The commands of ``sstp-helper``, one module per group; :mod:`sstp_pppd.helper` dispatches."""
