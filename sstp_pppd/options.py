"""The command line of ``sstp-pppd``: one table drives parsing, ``--help`` and the man page test.

The syntax is sstpc's: ``sstp-pppd [OPTIONS] SERVER [[--] PPPD-OPTIONS...]``, parsed the way
sstpc 1.0.18's GNU ``getopt_long`` (optstring ``"v"``, permuting) parses it, so that
NetworkManager-sstp's ``SERVER --option ...`` order works as it does for sstpc:

* options are recognised anywhere before ``--``; the first non-option word is the server; the
  other non-option words, then everything after ``--``, go to pppd, in their order;
* a long option may be abbreviated to a unique prefix (``--nolaunch``); an exact name wins;
  an ambiguous prefix is an error (glibc would take the first of several candidates that
  take the same kind of value, so sstpc reads ``--ca FILE`` as ``--ca-cert FILE``);
* a required value is the next word whatever it looks like, or ``--opt=value``; an optional
  value is taken only as ``--opt=value`` (``--log-syslog host`` must not eat the server name);
* an unknown or ambiguous ``--option`` before ``--`` is a usage error (exit 2, one line);
* **single-dash words** before ``--`` are short options, as getopt sees them: ``-v`` is
  ``--version``; any other (``-detach``, ``-am``) is a usage error, exactly as sstpc refuses it
  ("invalid option"). pppd options that start with ``-`` must follow ``--``, as sstpc requires.
  A lone ``-`` is a word, not an option.

Measured differences from sstpc, all in its logging options (which sstpc scans for separately):
sstpc refuses ``--log-level=5``, lets ``--log-file``/``--log-syslog`` take the next word (the
server), and even reads ``--log-*`` words after ``--``. Here they are ordinary options.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
from collections.abc import Sequence

from .core.redact import redact_url
from .errors import ConfigError


@enum.unique
class ArgKind(enum.Enum):
    NONE = "none"
    REQUIRED = "required"
    OPTIONAL = "optional"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OptionSpec:
    """One command-line option: its name, whether it takes a value, and its help text."""

    name: str
    arg: ArgKind = ArgKind.NONE
    metavar: str = ""
    help: str
    #: sstpc (1.0.18) accepts this option too, with the same meaning.
    sstpc: bool = True

    @property
    def dest(self) -> str:
        return self.name.removeprefix("--").replace("-", "_")


def _opt(
    name: str, help: str, metavar: str = "", arg: ArgKind | None = None, sstpc: bool = True
) -> OptionSpec:
    kind = arg if arg is not None else (ArgKind.REQUIRED if metavar else ArgKind.NONE)
    return OptionSpec(name=name, arg=kind, metavar=metavar, help=help, sstpc=sstpc)


OPT = ArgKind.OPTIONAL

#: Every option, in the order --help and the man page list them.
OPTIONS: tuple[OptionSpec, ...] = (
    # TLS
    _opt("--ca-cert", "trust only the CA certificate(s) in this PEM file", "FILE"),
    _opt("--ca-path", "trust the CA certificates in this hashed directory (c_rehash)", "DIR"),
    _opt("--crl-file", "check the server certificate against this PEM CRL", "FILE"),
    _opt("--crl-path", "check the server certificate against the CRLs in this directory", "DIR"),
    _opt("--insecure", "do not verify the server certificate or name (testing only)", sstpc=False),
    _opt("--cert-warn", "same as --insecure: only warn on certificate errors"),
    _opt(
        "--pin-sha256",
        "accept only a server whose leaf certificate has this SHA-256 "
        "fingerprint (hex, colons allowed) or public key pin (sha256//BASE64); repeatable",
        "PIN",
        sstpc=False,
    ),
    _opt(
        "--tls-min-version",
        "lowest TLS version to accept: 1.2 (default) or 1.3",
        "VERSION",
        sstpc=False,
    ),
    _opt(
        "--tls-max-version",
        "highest TLS version to offer: 1.2 or 1.3 (default: the highest, 1.3); 1.2 for "
        "servers whose TLS 1.3 is broken",
        "VERSION",
        sstpc=False,
    ),
    _opt("--tls-ext", "send the TLS SNI extension (always done; accepted for sstpc compatibility)"),
    _opt(
        "--host",
        "the server's name for TLS verification, SNI and the HTTP Host header, "
        "when SERVER is an address",
        "NAME",
    ),
    # connection
    _opt(
        "--connect-timeout",
        "seconds to wait for each TCP connection attempt (default 10)",
        "SECONDS",
        sstpc=False,
    ),
    _opt(
        "--hello-interval",
        "seconds of silence before an SSTP echo request; a server silent for two of "
        "them is given up (default 60, [MS-SSTP] Hello timer)",
        "SECONDS",
        sstpc=False,
    ),
    _opt(
        "--proxy",
        "connect through this HTTP proxy (default: $https_proxy, $http_proxy, honouring $no_proxy)",
        "http://[USER:PASS@]HOST:PORT",
    ),
    _opt(
        "--negotiation-timeout",
        "seconds the call may take to set up, PPP authentication included "
        "(default 60, [MS-SSTP] negotiation timer; 10 to 600, for a second factor)",
        "SECONDS",
        sstpc=False,
    ),
    _opt("--uuid", "the SSTP correlation GUID to send (default: a random one)", "GUID"),
    # pppd
    _opt(
        "--nolaunchpppd",
        "pty mode: pppd runs this program with the 'pty' option and it speaks HDLC on stdin/stdout",
    ),
    _opt(
        "--ipparam",
        "name of this connection: names the key socket /var/run/sstpc/sstpc-NAME (sstpc's), "
        "the log ident, and pppd's ipparam in launch mode",
        "NAME",
    ),
    _opt(
        "--key-socket",
        "the unix socket where pppd plugins hand over the MPPE keys "
        "(default /var/run/sstpc/sstpc-NAME, or sstpc-uds-sock without --ipparam; "
        "'none': no socket)",
        "PATH",
        sstpc=False,
    ),
    _opt("--user", "PPP user name (launch mode passes it to pppd)", "USER"),
    _opt(
        "--password",
        "PPP password; visible to other users until it is scrubbed: "
        "prefer --password-file or chap-secrets",
        "PASSWORD",
    ),
    _opt(
        "--password-file",
        "read the PPP password from the first line of this file",
        "FILE",
        sstpc=False,
    ),
    _opt(
        "--pppd",
        "the pppd program to launch (default: pppd on $PATH, then /usr/sbin/pppd)",
        "PATH",
        sstpc=False,
    ),
    _opt(
        "--priv-user",
        "after the tunnel is up, drop privileges to this user (pty mode only)",
        "USER",
    ),
    _opt(
        "--priv-group",
        "after the tunnel is up, drop privileges to this group (pty mode only)",
        "GROUP",
    ),
    _opt("--priv-dir", "not supported (sstpc chroots there): refused with an error", "DIR"),
    # ---- routes and DNS (sstp_pppd/host/): they need --ipparam NAME ----------------------
    _opt(
        "--save-server-route",
        "before connecting, pin a host route to the server (or proxy) through the current "
        "gateway; removed on exit",
    ),
    _opt(
        "--route",
        "route this IPv4 or IPv6 network (CIDR) through the tunnel; repeatable",
        "CIDR",
        sstpc=False,
    ),
    _opt(
        "--default-route",
        "full tunnel: two /1 routes through pppN above the untouched default route",
        sstpc=False,
    ),
    _opt(
        "--kill-switch",
        "with --default-route: when the link drops, refuse traffic instead of sending it "
        "in the clear, until the connection is taken down",
        sstpc=False,
    ),
    _opt(
        "--dns-domain",
        "a search domain for the tunnel's DNS, or ~DOMAIN for routing only; repeatable",
        "DOMAIN",
        sstpc=False,
    ),
    # ---- end of routes and DNS ----------------------------------------------------------
    # logging
    _opt(
        "--log-level",
        "0 errors, 1 warnings, 2 stages (default), 3 info, 4 packet "
        "decode, 5 frames, 6 hex dumps (secrets are never logged)",
        "LEVEL",
    ),
    _opt(
        "--log-syslog",
        "log to syslog (the default in pty mode), optionally to this socket",
        "SOCKET",
        arg=OPT,
    ),
    _opt("--log-stderr", "log to standard error (the default in launch mode)"),
    _opt("--log-stdout", "log to standard output (refused in pty mode)"),
    _opt(
        "--log-file",
        "append the log to this file (default /var/log/sstp-pppd.log)",
        "FILE",
        arg=OPT,
    ),
    _opt("--log-ident", "the syslog identity (default sstp-pppd)", "IDENT"),
    _opt("--log-lineno", "add the source file and line to each log line"),
    _opt(
        "--log-filter", "log only messages containing one of these comma-separated tokens", "TOKENS"
    ),
    _opt("--log-token", "same as --log-filter", "TOKENS"),
    _opt("--help", "show this help and exit"),
    _opt("--version", "show the version and exit"),
)

_BY_NAME = {spec.name: spec for spec in OPTIONS}


@dataclasses.dataclass(slots=True)
class Server:
    """Where to connect: the host (name or address), the port and the TLS/Host name."""

    host: str
    port: int = 443

    @property
    def is_address(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


@dataclasses.dataclass(slots=True)
class ParsedArgs:
    """The raw result of parsing: option values by dest, the server and pppd options."""

    values: dict[str, str | bool | list[str]]
    server: Server | None
    url_user: str | None
    url_password: str | None
    pppd_options: list[str]


_HOSTPORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.%a-zA-Z]+)\]|(?P<host>[^:/\[\]]+))"
    r"(?::(?P<port>\d{1,5}))?$"
)


def parse_server(text: str) -> tuple[Server, str | None, str | None]:
    """Parse sstpc's server syntax ``[https://][USER:PASS@]HOST|[V6][:PORT][/PATH]``.

    The path is ignored (SSTP has a fixed URI), as sstpc does. Returns the server and the
    user name and password given in the URL, if any.
    """
    rest = text.strip()
    shown = redact_url(text)  # error messages never repeat the password
    if "://" in rest:
        scheme, _, rest = rest.partition("://")
        if scheme.lower() != "https":
            raise ConfigError(f"server {shown!r}: only https:// is possible for SSTP")
    user = password = None
    if "@" in rest:
        # The userinfo runs to the last "@": passwords are typed with "/?#@" unencoded.
        userinfo, _, rest = rest.rpartition("@")
        u, sep, p = userinfo.partition(":")
        # Only here: most runs name no credentials in the URL, and urllib is start-up time.
        from urllib.parse import unquote  # noqa: PLC0415

        user = unquote(u)
        password = unquote(p) if sep else None
    rest = rest.split("/", 1)[0]
    match = _HOSTPORT.match(rest)
    if not match:
        raise ConfigError(f"server {shown!r} is not HOST, HOST:PORT or [IPV6]:PORT")
    host = match.group("v6") or match.group("host")
    port = int(match.group("port") or 443)
    if not 0 < port < 65536:
        raise ConfigError(f"server {shown!r}: port {port} is out of range")
    if match.group("v6"):
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError as exc:
            raise ConfigError(f"server {shown!r}: {host!r} is not an IPv6 address") from exc
    return Server(host=host, port=port), user, password


#: Short options, as sstpc's getopt optstring "v" defines them.
_SHORT = {"v": "--version"}


def _lookup(name: str) -> OptionSpec:
    """The option ``name`` names, exactly or as a unique prefix (getopt_long's rule)."""
    spec = _BY_NAME.get(name)
    if spec is not None:
        return spec
    matches = [s for s in OPTIONS if s.name.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        # ``name`` is a prefix of option names here: nothing else can be in it.
        names = ", ".join(s.name for s in matches)
        raise ConfigError(f"option {name!r} is ambiguous ({names})")
    raise ConfigError(f"unknown option {shown_option(name)} (see --help)")


#: What an error message may repeat of an unknown option: the name's own characters.
_OPTION_NAME = re.compile(r"--[A-Za-z0-9][A-Za-z0-9-]{0,39}")


def shown_option(typed: str) -> str:
    """An unknown ``--option`` as an error may show it: never the value typed with it.

    ``--password:secret``, ``--pasword=secret`` (the ``=`` is split off before this),
    ``--password@secret``, ``--passwordsecret``: the name is shown up to the first character
    that cannot be in one, and a known option's name is shown without what was glued to
    it; "..." says that something was left out.
    """
    match = _OPTION_NAME.match(typed)
    name = match.group(0) if match else "--"
    glued = [spec.name for spec in OPTIONS if name.startswith(spec.name) and name != spec.name]
    if glued:
        name = max(glued, key=len)  # "--passwordhunter2": a value glued to the option
    if name == typed:
        return f"'{name}'"
    return f"'{name}...' (what follows the name is not shown)"


#: Options that may be given more than once: their values are collected in a list.
REPEATABLE = frozenset({"pin_sha256", "route", "dns_domain"})


def _store(values: dict[str, str | bool | list[str]], spec: OptionSpec, value: str | bool) -> None:
    if spec.dest in REPEATABLE and isinstance(value, str):
        seen = values.setdefault(spec.dest, [])
        if isinstance(seen, list):
            seen.append(value)
    else:
        values[spec.dest] = value


def parse_args(argv: Sequence[str]) -> ParsedArgs:
    """Split ``argv`` (without the program name) into options, the server and pppd options."""
    values: dict[str, str | bool | list[str]] = {}
    args = list(argv)
    words: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            words += args[i:]
            break
        if arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            spec = _lookup(name)
            if spec.arg is ArgKind.NONE:
                if eq:
                    raise ConfigError(f"option {spec.name} takes no value")
                _store(values, spec, True)
            elif spec.arg is ArgKind.OPTIONAL:
                _store(values, spec, inline if eq else True)
            elif eq:
                _store(values, spec, inline)
            elif i < len(args):
                _store(values, spec, args[i])
                i += 1
            else:
                raise ConfigError(f"option {spec.name} needs a value ({spec.metavar})")
        elif arg.startswith("-") and arg != "-":
            # getopt reads "-detach" as the short options d, e, t...: only -v exists.
            for letter in arg[1:]:
                long_name = _SHORT.get(letter)
                if long_name is None:
                    # The letter only: the rest of the word may be a value ("-psecret").
                    shown = letter if letter.isascii() and letter.isalnum() else "?"
                    raise ConfigError(
                        f"unknown option '-{shown}' "
                        "(pppd options that start with '-' go after '--')"
                    )
                _store(values, _BY_NAME[long_name], True)
        else:
            words.append(arg)
    server = user = password = None
    if words:
        server, user, password = parse_server(words[0])
    return ParsedArgs(
        values=values, server=server, url_user=user, url_password=password, pppd_options=words[1:]
    )


def help_text(prog: str = "sstp-pppd") -> str:
    """The --help output, generated from :data:`OPTIONS`."""
    lines = [
        f"Usage: {prog} [OPTIONS] SERVER[:PORT] [[--] PPPD-OPTIONS...]",
        f'   or: pppd pty "{prog} --nolaunchpppd [OPTIONS] SERVER" ...',
        "",
        "An SSTP VPN client: TLS and the SSTP protocol here, PPP in the kernel through pppd.",
        "",
        "Options:",
    ]
    for spec in OPTIONS:
        if spec.arg is ArgKind.REQUIRED:
            left = f"{spec.name} {spec.metavar}"
        elif spec.arg is ArgKind.OPTIONAL:
            left = f"{spec.name}[={spec.metavar}]"
        else:
            left = spec.name
        lines.append(f"  {left}")
        lines.append(f"      {spec.help}")
    lines += ["", "Exit codes: see man sstp-pppd(8), section EXIT STATUS."]
    return "\n".join(lines) + "\n"
