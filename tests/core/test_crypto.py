"""Tests of sstp_pppd.core.crypto against published vectors (RFC 1320, 2759, 3079, MS-SSTP 4.7)."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstp_pppd.core import crypto

# RFC 2759 9.2, RFC 3079 3.5.3 and [MS-SSTP] 4.7 (HLAK halves from sstp-client's
# sstp_test_sha256): tests/vectors.py.
from ..vectors import (
    AUTH_CHALLENGE,
    AUTH_RESPONSE,
    CERT_HASH,
    CHALLENGE,
    CLIENT_RECV_KEY,
    CLIENT_SEND_KEY,
    MASTER_KEY,
    NONCE,
    NT_RESPONSE,
    PASSWORD,
    PASSWORD_HASH,
    PASSWORD_HASH_HASH,
    PEER_CHALLENGE,
    USER,
)
from ..vectors import CALL_CONNECTED_HEADER as HEADER
from ..vectors import CMAC as CMAC_A
from ..vectors import CMK as CMK_A
from ..vectors import SSTP_RECV_KEY as RECV_A
from ..vectors import SSTP_SEND_KEY as SEND_A

H = bytes.fromhex

# RFC 1320 appendix A.5, the MD4 test suite.
RFC1320 = [
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "043f8582f241db351ce627e153e7f0e4",
    ),
    (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
]

# Padding boundaries, computed with `openssl dgst -md4 -provider legacy` (OpenSSL 3).
MD4_BOUNDARIES = [
    (55, "c889c81dd86c4d2e025778944ea02881"),
    (56, "d5f9a9e9257077a5f08b0b92f348b0ad"),
    (63, "7ea3da77432d44c323671097d1348fc8"),
    (64, "52f5076fabd22680234a3fa9f9dc5732"),
    (119, "e65dd227ccef97fa1d34d70189120f76"),
    (120, "b03ddbd470b47c013e0c7ab2ddd763db"),
]


@pytest.mark.parametrize(("data", "digest"), RFC1320)
def test_md4_rfc1320(data: bytes, digest: str) -> None:
    assert crypto.md4(data).hex() == digest


@pytest.mark.parametrize(("length", "digest"), MD4_BOUNDARIES)
def test_md4_padding_boundaries(length: int, digest: str) -> None:
    assert crypto.md4(b"a" * length).hex() == digest


def _openssl_md4_available() -> bool:
    if shutil.which("openssl") is None:
        return False
    probe = subprocess.run(
        ["openssl", "dgst", "-md4", "-provider", "legacy", "-provider", "default"],
        input=b"",
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _openssl_md4_available(), reason="no openssl with the legacy provider")
@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=300))
def test_md4_matches_openssl(data: bytes) -> None:
    out = subprocess.run(
        ["openssl", "dgst", "-md4", "-provider", "legacy", "-provider", "default"],
        input=data,
        capture_output=True,
        check=True,
    ).stdout
    assert crypto.md4(data).hex() == out.split(b"= ")[-1].strip().decode()


def test_nt_password_hash_vectors() -> None:
    assert crypto.nt_password_hash(PASSWORD) == PASSWORD_HASH
    assert crypto.md4(crypto.nt_password_hash(PASSWORD)) == PASSWORD_HASH_HASH
    assert crypto.pppd_password_hash(PASSWORD) == PASSWORD_HASH


def test_nt_password_hash_unicode() -> None:
    # U+1F600 is the surrogate pair D83D DE00: Windows hashes the UTF-16 code units.
    assert crypto.nt_password_hash("\U0001f600") == crypto.md4(H("3dd800de"))
    assert crypto.nt_password_hash("é") == crypto.md4(H("e900"))
    # pppd widens each UTF-8 byte instead: C3 A9 -> C3 00 A9 00.
    assert crypto.pppd_password_hash("é") == crypto.md4(H("c300a900"))
    assert crypto.pppd_password_hash("é") != crypto.nt_password_hash("é")
    # A lone surrogate (from a badly decoded file) still hashes, as a code unit.
    assert crypto.nt_password_hash("\udcff") == crypto.md4(H("ffdc"))
    assert crypto.pppd_password_hash("\udcff") == crypto.md4(H("ff00"))


def test_pppd_password_hash_truncates_to_256_bytes() -> None:
    long = "x" * 300
    assert crypto.pppd_password_hash(long) == crypto.nt_password_hash("x" * 256)


def test_challenge_hash_rfc2759() -> None:
    assert crypto.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == CHALLENGE
    assert crypto.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, b"User") == CHALLENGE
    # The domain is not part of the hash (pppd chap_ms.c ChallengeHash, Windows).
    assert crypto.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, "DOM\\User") == CHALLENGE
    assert crypto.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, "user") != CHALLENGE


def test_generate_authenticator_response_rfc2759() -> None:
    resp = crypto.generate_authenticator_response(
        PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER
    )
    assert resp == AUTH_RESPONSE
    by_hash = crypto.generate_authenticator_response(
        None, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER, password_hash=PASSWORD_HASH
    )
    assert by_hash == AUTH_RESPONSE
    wrong = crypto.generate_authenticator_response(
        "clientpass", NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER
    )
    assert wrong != AUTH_RESPONSE


def test_generate_authenticator_response_needs_one_secret() -> None:
    args = (NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER)
    with pytest.raises(ValueError, match="exactly one"):
        crypto.generate_authenticator_response(None, *args)
    with pytest.raises(ValueError, match="exactly one"):
        crypto.generate_authenticator_response(PASSWORD, *args, password_hash=PASSWORD_HASH)
    with pytest.raises(ValueError, match="password hash"):
        crypto.generate_authenticator_response(None, *args, password_hash=b"short")


def test_mschapv2_mppe_keys_rfc3079() -> None:
    send, recv = crypto.mschapv2_mppe_keys(PASSWORD, NT_RESPONSE)
    assert send == CLIENT_SEND_KEY
    assert recv == CLIENT_RECV_KEY
    assert crypto.mppe_keys_from_password_hash(PASSWORD_HASH, NT_RESPONSE) == (send, recv)


def test_master_key_rfc3079() -> None:
    # MasterKey is internal; recompute the start keys from it to pin the magic strings.
    magic3 = b"On the client side, this is the receive key; on the server side, it is the send key."
    recv = hashlib.sha1(MASTER_KEY + bytes(40) + magic3 + b"\xf2" * 40).digest()[:16]
    assert recv == CLIENT_RECV_KEY
    master = hashlib.sha1(PASSWORD_HASH_HASH + NT_RESPONSE + b"This is the MPPE Master Key")
    assert master.digest()[:16] == MASTER_KEY


@pytest.mark.parametrize(
    "call",
    [
        lambda: crypto.mschapv2_mppe_keys(PASSWORD, NT_RESPONSE[:23]),
        lambda: crypto.mppe_keys_from_password_hash(PASSWORD_HASH[:15], NT_RESPONSE),
        lambda: crypto.challenge_hash(PEER_CHALLENGE[:8], AUTH_CHALLENGE, USER),
        lambda: crypto.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE + b"x", USER),
    ],
)
def test_mschap_length_checks(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        call()


def test_hlak_layouts() -> None:
    assert crypto.hlak() == bytes(32)
    assert crypto.hlak(SEND_A, RECV_A) == SEND_A + RECV_A
    assert crypto.hlak(SEND_A) == SEND_A + bytes(16)
    assert crypto.hlak(None, RECV_A) == bytes(16) + RECV_A
    assert crypto.hlak(b"\x01" * 8, b"\x02" * 20) == b"\x01" * 8 + bytes(8) + b"\x02" * 16
    msk = bytes(range(64))
    assert crypto.hlak(msk) == msk[:32]
    assert crypto.hlak(msk, RECV_A) == msk[:32]
    assert len(crypto.hlak(b"\x01" * 31)) == 32


def test_vector_a_sha256() -> None:
    key = crypto.hlak(SEND_A, RECV_A)
    assert crypto.cmk(crypto.HASH_PROTOCOL_SHA256, key) == CMK_A
    packet = crypto.call_connected(crypto.HASH_PROTOCOL_SHA256, NONCE, CERT_HASH, key)
    assert packet == HEADER + H("00000002") + NONCE + CERT_HASH + CMAC_A
    unsigned = packet[:80] + bytes(32)
    assert crypto.compound_mac(crypto.HASH_PROTOCOL_SHA256, key, unsigned) == CMAC_A


def _reference_sha1_packet(nonce: bytes, cert: bytes, key: bytes) -> bytes:
    # An independent implementation on the standard library.
    seed = b"SSTP inner method derived CMK" + b"\x14\x00\x01"
    cmk = hmac.new(key, seed, hashlib.sha1).digest()
    unsigned = HEADER + H("00000001") + nonce + cert + bytes(32)
    return unsigned[:80] + hmac.new(cmk, unsigned, hashlib.sha1).digest() + bytes(12)


def test_sha1_call_connected() -> None:
    key = crypto.hlak(CLIENT_SEND_KEY, CLIENT_RECV_KEY)
    digest = hashlib.sha1(b"a certificate").digest()
    padded = digest + bytes(12)
    assert crypto.cert_hash(b"a certificate", crypto.HASH_PROTOCOL_SHA1) == padded
    expected = _reference_sha1_packet(NONCE, padded, key)
    assert crypto.call_connected(1, NONCE, padded, key) == expected
    # A bare 20-byte SHA-1 digest is padded the same way.
    assert crypto.call_connected(1, NONCE, digest, key) == expected
    assert (
        crypto.cmk(1, key)
        == hmac.new(key, b"SSTP inner method derived CMK\x14\x00\x01", "sha1").digest()
    )


@settings(max_examples=50)
@given(
    nonce=st.binary(min_size=32, max_size=32),
    cert=st.binary(),
    key=st.binary(min_size=32, max_size=32),
)
def test_sha1_matches_reference(nonce: bytes, cert: bytes, key: bytes) -> None:
    cert32 = crypto.cert_hash(cert, 1)
    assert crypto.call_connected(1, nonce, cert32, key) == _reference_sha1_packet(
        nonce, cert32, key
    )


@settings(max_examples=50)
@given(
    nonce=st.binary(min_size=32, max_size=32),
    cert=st.binary(),
    key=st.binary(min_size=32, max_size=32),
)
def test_sha256_matches_reference(nonce: bytes, cert: bytes, key: bytes) -> None:
    cert32 = crypto.cert_hash(cert, 2)
    assert cert32 == hashlib.sha256(cert).digest()
    cmk = hmac.new(key, b"SSTP inner method derived CMK\x20\x00\x01", hashlib.sha256).digest()
    unsigned = HEADER + H("00000002") + nonce + cert32 + bytes(32)
    packet = crypto.call_connected(2, nonce, cert32, key)
    assert packet == unsigned[:80] + hmac.new(cmk, unsigned, hashlib.sha256).digest()


@pytest.mark.parametrize("hash_protocol", [0, 3, 4, -1, 256])
def test_hash_protocol_must_be_one_bit(hash_protocol: int) -> None:
    key = bytes(32)
    with pytest.raises(ValueError, match="hash protocol"):
        crypto.call_connected(hash_protocol, NONCE, CERT_HASH, key)
    with pytest.raises(ValueError, match="hash protocol"):
        crypto.cert_hash(b"x", hash_protocol)
    with pytest.raises(ValueError, match="hash protocol"):
        crypto.cmk(hash_protocol, key)


def test_call_connected_length_checks() -> None:
    key = bytes(32)
    with pytest.raises(ValueError, match="nonce"):
        crypto.call_connected(2, NONCE[:31], CERT_HASH, key)
    with pytest.raises(ValueError, match="certificate hash"):
        crypto.call_connected(2, NONCE, CERT_HASH[:20], key)  # no padding for SHA-256
    with pytest.raises(ValueError, match="certificate hash"):
        crypto.call_connected(1, NONCE, CERT_HASH[:21], key)
    with pytest.raises(ValueError, match="HLAK"):
        crypto.call_connected(2, NONCE, CERT_HASH, key[:16])
    with pytest.raises(ValueError, match="HLAK"):
        crypto.compound_mac(2, key + b"x", b"")


def test_int_flag_hash_protocol_accepted() -> None:
    import enum

    class Flag(enum.IntFlag):
        SHA1 = 1
        SHA256 = 2

    key = crypto.hlak(SEND_A, RECV_A)
    assert crypto.call_connected(Flag.SHA256, NONCE, CERT_HASH, key)[80:] == CMAC_A
