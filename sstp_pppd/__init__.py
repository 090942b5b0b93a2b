"""sstp-pppd: an SSTP VPN client for Linux that drives the kernel PPP stack through pppd."""

__version__ = "0.1.0"
