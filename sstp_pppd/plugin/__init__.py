"""Our pppd plugin, sstp-pppd-keys.so: its C source (package data) and its build (build.py)."""
