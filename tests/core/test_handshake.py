"""Tests of the HTTP phase: request bytes, the response parser, proxies."""

from __future__ import annotations

import base64
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sstp_pppd.core.errors import HttpError
from sstp_pppd.core.handshake import (
    DEFAULT_PROXY_PORT,
    MAX_HEADER_BYTES,
    SSTP_URI,
    HttpResponse,
    ResponseParser,
    check_proxy_response,
    check_sstp_response,
    connect_request,
    new_correlation_id,
    normalize_correlation_id,
    random_correlation_id,
    sstp_request,
)
from sstp_pppd.core.proxy import ProxyConfig, parse_proxy_url, proxy_from_environment
from sstp_pppd.errors import ExitCode, exit_code_of

GUID = "{BA195980-CD49-458B-9E23-C84EE0ADCD75}"

# What sorz/sstp-server 0.7.2 writes (sstpd/sstp.py), followed by the server's first
# SSTP bytes, which must come out in ``trailing``.
SORZ_REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nServer: SSTP-Server/0.7.2\r\n\r\n"
)
WINDOWS_REPLY = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Length: 18446744073709551615\r\n"
    b"Server: Microsoft-HTTPAPI/2.0\r\n"
    b"Date: Mon, 07 Apr 2025 10:00:00 GMT\r\n\r\n"
)
# accel-ppp's http_send_response: "%s %s\r\nDate: %s\r\n%s\r\n".
ACCEL_OK = (
    b"HTTP/1.1 200 OK\r\nDate: Mon, 07 Apr 2025 10:00:00 GMT\r\n"
    b"Content-Length: 18446744073709551615\r\n\r\n"
)
ACCEL_404 = b"HTTP/1.1 404 Not Found\r\nDate: Mon, 07 Apr 2025 10:00:00 GMT\r\n\r\n"
ACCEL_501 = b"HTTP/1.1 501 Not Implemented\r\nDate: Mon, 07 Apr 2025 10:00:00 GMT\r\n\r\n"
SSTP_BYTES = bytes.fromhex("1001000e00010001 000100060001".replace(" ", ""))


def parse(data: bytes) -> tuple[HttpResponse, bytes]:
    parser = ResponseParser()
    response = parser.feed(data)
    assert response is not None
    return response, parser.trailing


def response(status: int, reason: str = "", *headers: tuple[str, str]) -> HttpResponse:
    return HttpResponse(version="HTTP/1.1", status=status, reason=reason, headers=headers)


# --- requests --------------------------------------------------------------------------


def test_sstp_request_exact_bytes() -> None:
    assert sstp_request("vpn.example.com", GUID) == (
        b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n"
        b"Host: vpn.example.com\r\n"
        b"Content-Length: 18446744073709551615\r\n"
        b"SSTPCORRELATIONID: {BA195980-CD49-458B-9E23-C84EE0ADCD75}\r\n"
        b"\r\n"
    )
    assert SSTP_URI == "/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/"


@pytest.mark.parametrize(
    ("host", "header"),
    [
        ("10.0.0.1", b"Host: 10.0.0.1\r\n"),
        ("2001:db8::1", b"Host: [2001:db8::1]\r\n"),
        ("[2001:db8::1]", b"Host: [2001:db8::1]\r\n"),
        ("fe80::1%eth0", b"Host: [fe80::1]\r\n"),
        ("vpn.example.com:4433", b"Host: vpn.example.com:4433\r\n"),  # a user's --host
        ("[::1]:4433", b"Host: [::1]:4433\r\n"),
        ("b\u00fccher.example", b"Host: xn--bcher-kva.example\r\n"),
    ],
)
def test_sstp_request_host_forms(host: str, header: bytes) -> None:
    request = sstp_request(host, GUID)
    assert request.split(b"\r\n")[1] + b"\r\n" == header


@pytest.mark.parametrize(
    "host",
    [
        "",
        "vpn.example.com\r\nX-Injected: 1",
        "vpn.example.com\n",
        "vpn example.com",
        "vpn\x00.example.com",
        "vpn.example.com/path",
        "user@vpn.example.com",
        "[not-an-address]",
        "a:b:c",
        "\u00e9" * 70,
    ],
)
def test_sstp_request_rejects_bad_host(host: str) -> None:
    with pytest.raises(ValueError):
        sstp_request(host, GUID)


@given(st.binary(min_size=16, max_size=16))
def test_random_correlation_id_is_uuid4s_form(random16: bytes) -> None:
    got = random_correlation_id(random16)
    expected = uuid.UUID(bytes=random16, version=4)
    assert got == new_correlation_id(expected)
    assert normalize_correlation_id(got) == got


def test_random_correlation_id_needs_16_bytes() -> None:
    with pytest.raises(ValueError):
        random_correlation_id(bytes(15))


def test_correlation_id_forms() -> None:
    value = uuid.UUID("ba195980-cd49-458b-9e23-c84ee0adcd75")
    assert new_correlation_id(value) == GUID
    for text in (
        "ba195980-cd49-458b-9e23-c84ee0adcd75",
        "{ba195980-cd49-458b-9e23-c84ee0adcd75}",
        " {BA195980-CD49-458B-9E23-C84EE0ADCD75} ",
    ):
        assert normalize_correlation_id(text) == GUID
        assert GUID.encode() in sstp_request("h", text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{}",
        "ba195980cd49458b9e23c84ee0adcd75",
        "{ba195980-cd49-458b-9e23-c84ee0adcd75",
        "ba195980-cd49-458b-9e23-c84ee0adcd75}",
        "ba195980-cd49-458b-9e23-c84ee0adcd7g",
        "urn:uuid:ba195980-cd49-458b-9e23-c84ee0adcd75",
        "ba195980-cd49-458b-9e23-c84ee0adcd75\r\nX: y",
        "{{ba195980-cd49-458b-9e23-c84ee0adcd75}}",
    ],
)
def test_correlation_id_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a GUID"):
        normalize_correlation_id(text)
    with pytest.raises(ValueError, match="not a GUID"):
        sstp_request("h", text)


def test_connect_request_without_auth() -> None:
    assert connect_request("vpn.example.com", 443) == (
        b"CONNECT vpn.example.com:443 HTTP/1.1\r\n"
        b"Host: vpn.example.com:443\r\n"
        b"SSTPVERSION: 1.0\r\n"
        b"\r\n"
    )


def test_connect_request_with_basic_auth() -> None:
    request = connect_request("vpn.example.com", 8443, "Aladdin", "open sesame")
    assert request == (
        b"CONNECT vpn.example.com:8443 HTTP/1.1\r\n"
        b"Host: vpn.example.com:8443\r\n"
        b"SSTPVERSION: 1.0\r\n"
        b"Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"  # RFC 7617 2
        b"\r\n"
    )


def test_connect_request_auth_is_utf8_and_password_optional() -> None:
    request = connect_request("h", 443, "j\u00fcrgen", "p\u00e4ss:w@rd")
    token = request.split(b"Proxy-Authorization: Basic ")[1].split(b"\r\n")[0]
    assert base64.b64decode(token) == "j\u00fcrgen:p\u00e4ss:w@rd".encode()
    request = connect_request("h", 443, "user")
    assert b"Basic " + base64.b64encode(b"user:") + b"\r\n" in request


def test_connect_request_ipv6_target() -> None:
    assert connect_request("2001:db8::5", 443).startswith(
        b"CONNECT [2001:db8::5]:443 HTTP/1.1\r\nHost: [2001:db8::5]:443\r\n"
    )


@pytest.mark.parametrize(
    ("host", "port", "username"),
    [
        ("vpn.example.com:443", 443, None),
        ("vpn.example.com\r\n", 443, None),
        ("vpn.example.com", 0, None),
        ("vpn.example.com", 65536, None),
        ("vpn.example.com", 443, "user:name"),
    ],
)
def test_connect_request_rejects(host: str, port: int, username: str | None) -> None:
    with pytest.raises(ValueError):
        connect_request(host, port, username, "pw")


# --- response parser --------------------------------------------------------------------


def test_sorz_reply_and_trailing_bytes() -> None:
    resp, trailing = parse(SORZ_REPLY + SSTP_BYTES)
    assert resp == HttpResponse(
        version="HTTP/1.1",
        status=200,
        reason="OK",
        headers=(("Content-Length", "18446744073709551615"), ("Server", "SSTP-Server/0.7.2")),
    )
    assert trailing == SSTP_BYTES
    assert check_sstp_response(resp) == ()


def test_windows_and_accel_replies() -> None:
    resp, trailing = parse(WINDOWS_REPLY)
    assert resp.header("server") == "Microsoft-HTTPAPI/2.0"
    assert resp.header("SERVER") == "Microsoft-HTTPAPI/2.0"
    assert resp.header("date") == "Mon, 07 Apr 2025 10:00:00 GMT"
    assert resp.header("X-Missing") is None
    assert trailing == b""
    assert check_sstp_response(resp) == ()
    resp, _ = parse(ACCEL_OK)
    assert check_sstp_response(resp) == ()


def test_accel_404_and_501() -> None:
    resp, _ = parse(ACCEL_404)
    assert (resp.status, resp.reason) == (404, "Not Found")
    with pytest.raises(HttpError) as info:
        check_sstp_response(resp)
    assert info.value.status == 404
    assert exit_code_of(info.value) == ExitCode.HTTP
    assert str(info.value) == (
        "the server answered the SSTP request with 404 Not Found: the server does not "
        "serve SSTP at this address (wrong port or path?)"
    )
    resp, _ = parse(ACCEL_501)
    with pytest.raises(HttpError, match=r"501 Not Implemented: .*not implemented") as info:
        check_sstp_response(resp)
    assert info.value.status == 501


@pytest.mark.parametrize("sample", [SORZ_REPLY, WINDOWS_REPLY, ACCEL_404])
def test_every_split_offset(sample: bytes) -> None:
    data = sample + SSTP_BYTES
    expected = parse(data)
    for cut in range(len(data) + 1):
        parser = ResponseParser()
        first = parser.feed(data[:cut])
        if first is not None:
            assert (first, parser.trailing + data[cut:]) == expected
            continue
        assert parser.feed(data[cut:]) == expected[0]
        assert parser.trailing == expected[1]


def test_every_pair_of_split_offsets() -> None:
    data = SORZ_REPLY + SSTP_BYTES
    expected = parse(data)
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            assert feed_chunks([data[:i], data[i:j], data[j:]]) == ("ok", *expected)


def test_byte_by_byte() -> None:
    parser = ResponseParser()
    results = [parser.feed(bytes([b])) for b in SORZ_REPLY]
    assert results[:-1] == [None] * (len(SORZ_REPLY) - 1)
    assert results[-1] == parse(SORZ_REPLY)[0]
    assert parser.trailing == b""


def test_bare_lf_and_mixed_line_endings() -> None:
    expected = parse(SORZ_REPLY)[0]
    assert parse(SORZ_REPLY.replace(b"\r\n", b"\n"))[0] == expected
    mixed = (
        b"HTTP/1.1 200 OK\nContent-Length: 18446744073709551615\r\nServer: SSTP-Server/0.7.2\n\r\n"
    )
    assert parse(mixed + b"x") == (expected, b"x")


def test_status_line_variants() -> None:
    assert parse(b"HTTP/1.1 200\r\n\r\n")[0].reason == ""
    assert parse(b"HTTP/1.1 200 \r\n\r\n")[0].reason == ""
    resp = parse(b"HTTP/1.0 200 Connection established\r\n\r\n")[0]
    assert (resp.version, resp.status, resp.reason) == ("HTTP/1.0", 200, "Connection established")
    assert parse(b"HTTP/1.1 404 Nicht gefunden \xe4\r\n\r\n")[0].reason == "Nicht gefunden \xe4"


def test_header_details() -> None:
    resp = parse(
        b"HTTP/1.1 200 OK\r\n"
        b"content-length:18446744073709551615  \r\n"
        b"X-A: one\r\n"
        b"x-a: two\r\n"
        b"X-Empty:\r\n\r\n"
    )[0]
    assert resp.header("Content-Length") == "18446744073709551615"
    assert resp.header("X-A") == "one, two"
    assert resp.header("x-empty") == ""


def test_interim_responses_are_skipped() -> None:
    resp, trailing = parse(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n" + SORZ_REPLY
    )
    assert resp == parse(SORZ_REPLY)[0]
    assert trailing == b""
    switching = parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\nabc")
    assert (switching[0].status, switching[1]) == (101, b"abc")
    with pytest.raises(HttpError, match="101"):
        check_sstp_response(switching[0])


def test_incomplete_returns_none() -> None:
    parser = ResponseParser()
    assert parser.feed(b"") is None
    assert parser.feed(b"HTTP/1.1 200 OK\r\n") is None
    assert parser.feed(b"Server: x\r\n\r") is None
    assert parser.response is None
    assert parser.trailing == b""
    assert parser.feed(b"\n") is not None
    assert parser.response is not None


def assert_clean_message(error: HttpError) -> None:
    message = str(error)
    assert message.isascii()
    assert message.isprintable()
    assert len(message) < 400


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
            r"did not answer in HTTP: received 'SSH-2.0-OpenSSH",
        ),
        (b"\x15\x03\x03\x00\x02\x02\x28", r"did not answer in HTTP: received '\\x15\\x03\\x03"),
        (b"http/1.1 200 OK\r\n\r\n", "did not answer in HTTP"),
        (b"HTTP/2 200\r\n\r\n", "did not answer in HTTP"),
        (b"\r\nHTTP/1.1 200 OK\r\n\r\n", "did not answer in HTTP"),
        (b"HTTP/1.1 20 OK\r\n", "malformed HTTP status line: 'HTTP/1.1 20 OK'"),
        (b"HTTP/1.1 099 Low\r\n", "malformed HTTP status line"),
        (b"HTTP/1.1  200 OK\r\n", "malformed HTTP status line"),
        (b"HTTP/1.1 200 O\x00K\r\n", r"malformed HTTP status line: 'HTTP/1.1 200 O\\x00K'"),
        (b"HTTP/1.1 200 OK\r\r\n\r\n", "malformed HTTP status line"),
        (b"HTTP/1.10 200 OK\r\n", "malformed HTTP status line"),
        (b"HTTP/1.1 200 OK\r\nServer\r\n\r\n", "malformed HTTP header line: 'Server'"),
        (b"HTTP/1.1 200 OK\r\nServer : x\r\n\r\n", "malformed HTTP header line"),
        (b"HTTP/1.1 200 OK\r\n: x\r\n\r\n", "malformed HTTP header line"),
        (b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "malformed HTTP header line"),
        (b"HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n", "malformed HTTP header line"),
        (
            b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
            r"control character in HTTP header: 'X: a\\x00b'",
        ),
        (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "control character in HTTP header"),
        (b"HTTP/1.1 200 OK\r\nX\x7f: a\r\n\r\n", "control character in HTTP header"),
    ],
)
def test_malformed_responses(data: bytes, pattern: str) -> None:
    with pytest.raises(HttpError, match=pattern) as info:
        ResponseParser().feed(data)
    assert_clean_message(info.value)


def test_non_http_is_reported_before_a_line_ends() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP") is None
    with pytest.raises(HttpError, match="did not answer in HTTP: received 'HTTPS'"):
        parser.feed(b"S")


def test_status_of_header_errors() -> None:
    with pytest.raises(HttpError) as info:
        ResponseParser().feed(b"HTTP/1.1 404 Not Found\r\nbad line\r\n\r\n")
    assert info.value.status == 404
    with pytest.raises(HttpError) as info:
        ResponseParser().feed(b"HTTP/1.1 x\r\n")
    assert info.value.status is None


def test_long_error_messages_are_truncated() -> None:
    with pytest.raises(HttpError) as info:
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nX-Long: " + b"\x01" * 5000 + b"\r\n\r\n")
    assert_clean_message(info.value)
    assert str(info.value).endswith("...'")


def test_header_size_limit_boundary() -> None:
    head = b"HTTP/1.1 200 OK\r\nX: "
    tail = b"\r\n\r\n"
    exact = head + b"a" * (MAX_HEADER_BYTES - len(head) - len(tail)) + tail
    assert len(exact) == MAX_HEADER_BYTES
    assert parse(exact + b"rest")[1] == b"rest"
    too_long = head + b"a" * (MAX_HEADER_BYTES - len(head) - len(tail) + 1) + tail
    with pytest.raises(HttpError, match="response headers too long") as info:
        ResponseParser().feed(too_long)
    assert info.value.status == 200
    parser = ResponseParser()
    for offset in range(0, len(too_long) - 1000, 1000):
        assert parser.feed(too_long[offset : offset + 1000]) is None
    with pytest.raises(HttpError, match="response headers too long"):
        parser.feed(too_long[len(too_long) // 1000 * 1000 :])


def test_limit_reached_without_end_fails_at_once() -> None:
    parser = ResponseParser()
    with pytest.raises(HttpError, match="too long"):
        parser.feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_HEADER_BYTES - 20))
    assert ResponseParser().feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_HEADER_BYTES - 21)) is None


def test_endless_status_line_is_bounded() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 ") is None
    with pytest.raises(HttpError, match="too long") as info:
        for _ in range(MAX_HEADER_BYTES // 1024 + 1):
            parser.feed(b"a" * 1024)
    assert info.value.status is None


def test_feed_after_completion_and_eof() -> None:
    parser = ResponseParser()
    assert parser.feed(SORZ_REPLY) is not None
    parser.feed_eof()  # complete: nothing to report
    with pytest.raises(HttpError, match="already complete"):
        parser.feed(b"more")
    with pytest.raises(HttpError, match="before any HTTP response") as info:
        ResponseParser().feed_eof()
    assert info.value.status is None
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 404 Not Found\r\nDate: x")
    with pytest.raises(
        HttpError, match=r"in the middle of the HTTP response: 'HTTP/1.1 404"
    ) as info:
        parser.feed_eof()
    assert info.value.status == 404


# --- checks of the responses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_length", "warned"),
    [
        (None, False),
        ("18446744073709551615", False),
        ("18446744073709551615, 18446744073709551615", False),
        ("0", True),
        ("-1", True),
        ("18446744073709551615, 5", True),
    ],
)
def test_content_length_is_only_a_warning(content_length: str | None, warned: bool) -> None:
    headers = () if content_length is None else (("Content-Length", content_length),)
    warnings = check_sstp_response(response(200, "OK", *headers))
    assert len(warnings) == int(warned)
    if warned:
        assert content_length is not None
        assert content_length in warnings[0]
        assert "continuing" in warnings[0]


def test_transfer_encoding_warns() -> None:
    (warning,) = check_sstp_response(response(200, "OK", ("Transfer-Encoding", "chunked")))
    assert "'chunked'" in warning


@pytest.mark.parametrize(
    ("status", "reason", "headers", "fragment"),
    [
        (
            301,
            "Moved Permanently",
            (("Location", "https://example.com/"),),
            "'https://example.com/'",
        ),
        (302, "Found", (), "cannot follow redirects"),
        (400, "Bad Request", (), "malformed"),
        (401, "Unauthorized", (), "refused the SSTP request"),
        (403, "Forbidden", (), "refused the SSTP request"),
        (405, "Method Not Allowed", (), "not allowed (not an SSTP server"),
        (407, "Proxy Authentication Required", (), "--proxy http://user:pass@host:port"),
        (503, "Service Unavailable", (), "try again later"),
        (204, "No Content", (), "SSTP needs 200 OK"),
        (600, "", (), "with 600: SSTP needs 200 OK"),
    ],
)
def test_sstp_refusals(
    status: int, reason: str, headers: tuple[tuple[str, str], ...], fragment: str
) -> None:
    with pytest.raises(HttpError) as info:
        check_sstp_response(response(status, reason, *headers))
    assert info.value.status == status
    assert f"with {status} {reason}".rstrip() in str(info.value)
    assert fragment in str(info.value)


def test_hostile_reason_and_location_are_bounded() -> None:
    resp = response(302, "\xe4" * 1000, ("Location", "\u2028" + "L" * 1000))
    with pytest.raises(HttpError) as info:
        check_sstp_response(resp)
    assert_clean_message(info.value)


def test_proxy_success() -> None:
    for data in (b"HTTP/1.1 200 Connection established\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\n"):
        check_proxy_response(parse(data)[0])
    check_proxy_response(response(204))


def test_proxy_407() -> None:
    resp = response(407, "Proxy Authentication Required", ("Proxy-Authenticate", 'Basic realm="x"'))
    with pytest.raises(HttpError) as info:
        check_proxy_response(resp)
    assert info.value.status == 407
    assert str(info.value) == (
        "the proxy answered CONNECT with 407 Proxy Authentication Required: proxy "
        "authentication required: use a proxy URL http://user:pass@host:port"
    )
    with pytest.raises(HttpError, match="proxy authentication failed: check"):
        check_proxy_response(resp, credentials_sent=True)
    ntlm = response(407, "", ("Proxy-Authenticate", "NTLM"), ("Proxy-Authenticate", "Negotiate"))
    with pytest.raises(
        HttpError, match="only Basic is supported and the proxy offers 'NTLM, Negotiate'"
    ):
        check_proxy_response(ntlm)


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        (403, "policy may forbid"),
        (405, "does not support CONNECT"),
        (501, "does not support CONNECT"),
        (502, "could not reach the server"),
        (504, "could not reach the server"),
        (400, "refused the tunnel"),
        (301, "refused the tunnel"),
    ],
)
def test_proxy_refusals(status: int, fragment: str) -> None:
    with pytest.raises(HttpError, match=fragment) as info:
        check_proxy_response(response(status, "Reason"))
    assert info.value.status == status
    assert f"with {status} Reason" in str(info.value)


# --- proxy configuration ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy.example.com:3128", ProxyConfig(host="proxy.example.com", port=3128)),
        ("http://proxy.example.com:3128/", ProxyConfig(host="proxy.example.com", port=3128)),
        ("http://proxy.example.com", ProxyConfig(host="proxy.example.com", port=1080)),
        ("http://proxy.example.com:", ProxyConfig(host="proxy.example.com", port=1080)),
        ("proxy.example.com:8080", ProxyConfig(host="proxy.example.com", port=8080)),
        ("  HTTP://Proxy.Example.COM:8080  ", ProxyConfig(host="proxy.example.com", port=8080)),
        ("http://[2001:db8::1]:3128", ProxyConfig(host="2001:db8::1", port=3128)),
        ("http://10.1.2.3", ProxyConfig(host="10.1.2.3", port=1080)),
        (
            "http://user:pass@proxy:3128",
            ProxyConfig(host="proxy", port=3128, username="user", password="pass"),
        ),
        (
            "http://dom%5Cus%40er:p%3As%2Fs%20w@proxy",
            ProxyConfig(host="proxy", username="dom\\us@er", password="p:s/s w"),
        ),
        ("http://user@proxy", ProxyConfig(host="proxy", username="user")),
        ("http://user:@proxy", ProxyConfig(host="proxy", username="user", password="")),
        ("http://@proxy", ProxyConfig(host="proxy")),
        ("http://u:p@ss@proxy", ProxyConfig(host="proxy", username="u", password="p@ss")),
        (
            "http://j%C3%BCrgen:x@proxy",
            ProxyConfig(host="proxy", username="j\u00fcrgen", password="x"),
        ),
    ],
)
def test_parse_proxy_url(url: str, expected: ProxyConfig) -> None:
    assert parse_proxy_url(url) == expected
    assert DEFAULT_PROXY_PORT == 1080


@pytest.mark.parametrize(
    "url",
    [
        "https://u:hunter2@proxy:443",
        "socks5://u:hunter2@proxy:1080",
        "http://",
        "http://u:hunter2@:8080",
        "http://u:hunter2@proxy:0",
        "http://u:hunter2@proxy:65536",
        "http://u:hunter2@proxy:port",
        "http://u:hunter2@[::1",
        "http://u:hunter2@pro xy:80",
        'http://u:hunter2@pro"xy:80',
    ],
)
def test_parse_proxy_url_rejects_without_leaking_the_password(url: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_proxy_url(url)
    assert "hunter2" not in str(info.value)


def test_proxy_config_repr_hides_the_password() -> None:
    config = parse_proxy_url("http://user:hunter2@proxy:3128")
    assert "hunter2" not in repr(config)
    assert config.password == "hunter2"


def env_proxy(env: dict[str, str], host: str = "vpn.example.com", port: int = 443) -> str | None:
    return proxy_from_environment(env, host, port)


def test_proxy_variables_order() -> None:
    assert env_proxy({}) is None
    all_vars = {
        "https_proxy": "http://a:1",
        "HTTPS_PROXY": "http://b:1",
        "http_proxy": "http://c:1",
        "all_proxy": "http://d:1",
        "ALL_PROXY": "http://e:1",
    }
    names = list(all_vars)
    for index, name in enumerate(names):
        env = {key: all_vars[key] for key in names[index:]}
        assert env_proxy(env) == all_vars[name]
    assert env_proxy({"https_proxy": "", "http_proxy": " http://c:1 "}) == "http://c:1"
    # HTTP_PROXY can come from a CGI request's "Proxy:" header (httpoxy): never used.
    assert env_proxy({"HTTP_PROXY": "http://evil:1"}) is None


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypassed"),
    [
        ("*", "vpn.example.com", 443, True),
        ("example.com", "vpn.example.com", 443, True),
        ("example.com", "example.com", 443, True),
        ("example.com", "badexample.com", 443, False),
        (".example.com", "vpn.example.com", 443, True),
        (".example.com", "example.com", 443, True),
        ("*.example.com", "vpn.example.com", 443, True),
        ("EXAMPLE.com", "VPN.Example.Com.", 443, True),
        ("other.org, example.com ", "vpn.example.com", 443, True),
        ("other.org,,", "vpn.example.com", 443, False),
        ("vpn.example.com", "example.com", 443, False),
        ("example.com:443", "vpn.example.com", 443, True),
        ("example.com:8443", "vpn.example.com", 443, False),
        ("10.1.2.3", "10.1.2.3", 443, True),
        ("10.1.2.3", "10.1.2.4", 443, False),
        ("10.0.0.0/8", "10.200.0.1", 443, True),
        ("10.0.0.0/8", "11.0.0.1", 443, False),
        ("10.0.0.0/8", "10.example.com", 443, False),
        ("10.1.2.3:443", "10.1.2.3", 443, True),
        ("10.1.2.3:80", "10.1.2.3", 443, False),
        ("::1", "::1", 443, True),
        ("[::1]", "[::1]", 443, True),
        ("[::1]:443", "::1", 443, True),
        ("[::1]:80", "::1", 443, False),
        ("fd00::/8", "fd12::5", 443, True),
        ("::/0", "10.1.2.3", 443, False),
        ("0.0.0.0/0", "2001:db8::1", 443, False),
        ("localhost", "127.0.0.1", 443, False),
    ],
)
def test_no_proxy(no_proxy: str, host: str, port: int, bypassed: bool) -> None:
    env = {"https_proxy": "http://proxy:3128", "no_proxy": no_proxy}
    assert (env_proxy(env, host, port) is None) == bypassed


def test_no_proxy_lowercase_wins() -> None:
    env = {"https_proxy": "http://p:1", "no_proxy": "other.org", "NO_PROXY": "example.com"}
    assert env_proxy(env) == "http://p:1"
    env = {"https_proxy": "http://p:1", "NO_PROXY": "example.com"}
    assert env_proxy(env) is None


# --- fuzzing ----------------------------------------------------------------------------

Outcome = tuple[object, ...]


def feed_chunks(chunks: list[bytes]) -> Outcome:
    """Feed ``chunks`` as a transport would; the outcome must not depend on the split."""
    parser = ResponseParser()
    try:
        for index, chunk in enumerate(chunks):
            resp = parser.feed(chunk)
            if resp is not None:
                return ("ok", resp, parser.trailing + b"".join(chunks[index + 1 :]))
        parser.feed_eof()
    except HttpError as error:
        assert_clean_message(error)
        return ("error", error.status)
    raise AssertionError("feed_eof returned on an incomplete response")


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


_LINE_ENDS = st.sampled_from([b"\r\n", b"\n", b"\r", b""])
_TOKENS = st.sampled_from(
    [
        b"HTTP/1.1 ",
        b"HTTP/1.0 ",
        b"HTTP/2 ",
        b"200",
        b"100",
        b"101",
        b"404",
        b" OK",
        b"Content-Length",
        b": ",
        b":",
        b" ",
        b"\t",
        b"18446744073709551615",
        b"Server",
        b"\x00",
        b"\x7f",
        b"\xff",
        b"x",
    ]
)


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    """Mostly well-formed responses with mutations, to reach every branch of the parser."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(1, 3))):
        parts.append(
            draw(st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.1 100 Continue", b"HTTP/1.0 407"]))
        )
        for _ in range(draw(st.integers(0, 4))):
            parts.append(draw(_LINE_ENDS))
            parts.append(b"".join(draw(st.lists(_TOKENS, max_size=6))))
        parts.append(draw(_LINE_ENDS) + draw(_LINE_ENDS))
    parts.append(draw(st.binary(max_size=8)))
    return b"".join(parts)


fuzz_input = st.one_of(st.binary(max_size=300), responses())
fuzz_cuts = st.lists(st.integers(min_value=0), max_size=6)


def check_split_invariance(data: bytes, cuts: list[int]) -> None:
    whole = feed_chunks([data])
    assert feed_chunks(split(data, cuts)) == whole
    if whole[0] == "ok":
        resp = whole[1]
        assert isinstance(resp, HttpResponse)
        assert 100 <= resp.status <= 999
        assert data.endswith(whole[2])  # type: ignore[arg-type]


@given(data=fuzz_input, cuts=fuzz_cuts)
@settings(max_examples=400, deadline=None)
def test_fuzz_parser(data: bytes, cuts: list[int]) -> None:
    check_split_invariance(data, cuts)


@pytest.mark.slow
@given(data=fuzz_input, cuts=fuzz_cuts)
# 20,000 splits of hostile responses (~1.5 CPU-min); 100,000 took 7.4 CPU-min.
@settings(max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_parser_long(data: bytes, cuts: list[int]) -> None:
    check_split_invariance(data, cuts)
