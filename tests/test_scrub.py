"""No secret on the command line or in an error line: the argv scrub and URL redaction.

Each form here reached ps or an error line before: a %xx-encoded password in the server
URL (the decoded form was looked for, so nothing was scrubbed, and no warning either),
pppd's own ``password`` option, a proxy or server password holding ``/``, ``?``, ``#``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstp_pppd.core.proxy import parse_proxy_url
from sstp_pppd.core.redact import password_span, redact_url
from sstp_pppd.errors import ConfigError
from sstp_pppd.options import parse_server
from sstp_pppd.scrub import secret_spans

PW = "S3cr/et?#@:%41x"  # everything a URL parser trips over


def scrubbed(args: list[str]) -> list[str]:
    raw = [a.encode() for a in args]
    out = [bytearray(a) for a in raw]
    for i, s, e in secret_spans(raw):
        out[i][s:e] = b"x" * (e - s)
    return [bytes(a).decode() for a in out]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--password", "hunter2", "h"], ["--password", "xxxxxxx", "h"]),
        (["--password=hunter2", "h"], ["--password=xxxxxxx", "h"]),
        (["https://bob:p%40ss@h:443/x"], ["https://bob:xxxxxx@h:443/x"]),
        (["bob:pw@h"], ["bob:xx@h"]),
        (["https://bob:pa/ss@h"], ["https://bob:xxxxx@h"]),
        (["https://bob@h"], ["https://bob@h"]),  # no password
        (["--proxy", "http://u:p#w@proxy:3128", "h"], ["--proxy", "http://u:xxx@proxy:3128", "h"]),
        (["--proxy=u:p?w@proxy", "h"], ["--proxy=u:xxx@proxy", "h"]),
        (["h", "--", "noauth", "password", "pppdpw"], ["h", "--", "noauth", "password", "xxxxxx"]),
        (["--user", "password", "h"], ["--user", "password", "h"]),  # a user named so
        (["--password", ""], ["--password", ""]),
    ],
)
def test_secret_spans(args: list[str], expected: list[str]) -> None:
    assert scrubbed(args) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii", exclude_characters="\0"), min_size=1))
def test_any_password_in_a_url_is_found(pw: str) -> None:
    url = f"https://user:{pw}@vpn.example:443/sra_{{BA195980-CD49-458b-9E23-C84EE0ADCD75}}/"
    span = password_span(url)
    assert span is not None and url[span[0] : span[1]] == pw
    assert redact_url(url) == url.replace(f"user:{pw}@", "user:***@", 1)


@pytest.mark.parametrize(
    "url",
    [
        f"http://u:{PW}@proxy:3128",
        f"u:{PW}@proxy:3128",
        f"http://u:{PW}@proxy:99999",
        f"http://u:{PW}@",
        f"socks5://u:{PW}@proxy",
        "http://u:pa/ss@proxy:3128",
    ],
)
def test_proxy_errors_never_show_the_password(url: str) -> None:
    pw = url.split(":", 2)[-1].rpartition("@")[0] if url.startswith(("http", "socks")) else PW
    try:
        parse_proxy_url(url)
    except ValueError as exc:
        assert (
            pw not in str(exc)
            and "pa/ss" not in str(exc)
            and "pa" not in str(exc).split("'")[1].replace("proxy", "")
        )
    # a URL that parses is fine too: only error lines are checked here


@pytest.mark.parametrize(
    "server",
    [
        f"https://u:{PW}@bad:host:1",
        f"ftp://u:{PW}@h",
        f"https://u:{PW}@h:99999",
        f"https://u:{PW}@[zz::1]:443",
        "https://u:pa/ss@h:x",
    ],
)
def test_server_errors_never_show_the_password(server: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_server(server)
    assert PW not in str(exc.value) and "pa/ss" not in str(exc.value)


def test_server_password_with_slash_is_parsed() -> None:
    server, user, password = parse_server("https://bob:pa/ss@vpn.example:8443/path")
    assert (server.host, server.port, user, password) == ("vpn.example", 8443, "bob", "pa/ss")


def test_cli_scrubs_an_encoded_url_password_while_running(tmp_path: Path) -> None:
    """The real CLI, stuck in the TLS handshake with a silent server: ps must not show the
    %xx password (before, the decoded form was searched for and nothing was scrubbed)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        secret = "p%40ss%2Fw0rd"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from sstp_pppd.cli import main; sys.exit(main())",
                "--log-level",
                "4",
                "--proxy",
                "http://pu:proxy%2Fpw@127.0.0.1:9",
                "--log-stderr",
                f"https://bob:{secret}@127.0.0.1:{port}",
                "--",
                "password",
                "pppd-pw",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            listener.settimeout(60)
            # the proxy (port 9) refuses; what matters is the command line meanwhile
            deadline = time.monotonic() + 30
            cmdline = b""
            while time.monotonic() < deadline and proc.poll() is None:
                cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
                if b"main()" in cmdline and b"xxxx" in cmdline:
                    break
                time.sleep(0.01)
            assert secret.encode() not in cmdline
            assert b"proxy%2Fpw" not in cmdline and b"pppd-pw" not in cmdline
            assert b"bob:" + b"x" * len(secret) + b"@" in cmdline
        finally:
            proc.kill()
            _, err = proc.communicate(timeout=30)
        assert secret not in err and "p@ss/w0rd" not in err and "proxy/pw" not in err


def test_console_script_scrubs_before_importing_the_cli() -> None:
    """scrub.main (the console script) scrubs before sstp_pppd.cli is even imported."""
    code = (
        "import sys, sstp_pppd.scrub as s\n"
        "s.scrub_process_argv()\n"
        "print(open('/proc/self/cmdline','rb').read().count(b'hunter' b'2'),"
        " 'sstp_pppd.cli' in sys.modules, flush=True)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, "--password", "hunter2", "vpn.example"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert res.stdout.split() == ["0", "False"]
    from sstp_pppd.errors import ExitCode

    assert ExitCode.INTERRUPTED == 11  # scrub.main returns it before errors.py is loaded
