"""Crypto binding for SSTP: MD4, MS-CHAPv2 keys, HLAK, CMK, Compound MAC, cert hash.

Pure functions, no state. The layers are:

* RFC 1320 :func:`md4`, because ``hashlib.new("md4")`` fails on OpenSSL 3 and
  ``cryptography`` has no MD4 at all (SHA-1, SHA-256 and HMAC come from the
  standard library's hashlib and hmac: importing ``cryptography`` would cost
  start-up time and memory for nothing);
* RFC 2759 (MS-CHAPv2) :func:`nt_password_hash`, :func:`challenge_hash` and
  :func:`generate_authenticator_response`, used to check the server's Success;
* RFC 3079 section 3 :func:`mschapv2_mppe_keys`, the client's MPPE master keys;
* [MS-SSTP] 3.2.5.2 and 2.2.7: :func:`hlak`, :func:`cmk`, :func:`compound_mac`,
  :func:`cert_hash` and :func:`call_connected`, the finished CALL_CONNECTED packet.

Argument errors (a nonce that is not 32 bytes, an unknown hash protocol) are local
misuse, not malformed wire data: they raise :class:`~.errors.UsageError` (a
``ValueError``). Callers feed
these functions values the packet decoder has already checked.

Nothing here logs, and no value derived from a password is kept beyond the call.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from .errors import UsageError
from .messages import ControlPacket, CryptoBinding, HashProtocol, MessageType

__all__ = [
    "CALL_CONNECTED_LENGTH",
    "HASH_PROTOCOL_SHA1",
    "HASH_PROTOCOL_SHA256",
    "HLAK_LENGTH",
    "call_connected",
    "cert_hash",
    "challenge_hash",
    "cmk",
    "compound_mac",
    "generate_authenticator_response",
    "hlak",
    "md4",
    "mppe_keys_from_password_hash",
    "mschapv2_mppe_keys",
    "nt_password_hash",
    "pppd_password_hash",
]

#: CERT_HASH_PROTOCOL_SHA1 ([MS-SSTP] 2.2.7): the codec's :class:`HashProtocol`, one type.
HASH_PROTOCOL_SHA1 = HashProtocol.CERT_HASH_PROTOCOL_SHA1
#: CERT_HASH_PROTOCOL_SHA256.
HASH_PROTOCOL_SHA256 = HashProtocol.CERT_HASH_PROTOCOL_SHA256
#: Length of the Higher-Layer Authentication Key, the CMK input ([MS-SSTP] 3.2.5.2).
HLAK_LENGTH = 32
#: Length of a CALL_CONNECTED packet with its Crypto Binding attribute.
CALL_CONNECTED_LENGTH = 112

# [MS-SSTP] 2.2.7: every hash and MAC field is 32 bytes; SHA-1 values are zero-padded.
_FIELD_LENGTH = 32
_NONCE_LENGTH = 32
_NT_RESPONSE_LENGTH = 24
_CHALLENGE_LENGTH = 16
_KEY_LENGTH = 16
# pppd truncates secrets to MAXSECRETLEN bytes (auth.c get_secret).
_PPPD_MAXSECRETLEN = 256

_CMK_SEED = b"SSTP inner method derived CMK"

# RFC 3079 3.4
_MASTER_KEY_MAGIC = b"This is the MPPE Master Key"
_SEND_KEY_MAGIC = (
    b"On the client side, this is the send key; on the server side, it is the receive key."
)
_RECEIVE_KEY_MAGIC = (
    b"On the client side, this is the receive key; on the server side, it is the send key."
)
_SHS_PAD1 = bytes(40)
_SHS_PAD2 = b"\xf2" * 40

# RFC 2759 8.7
_AUTH_MAGIC1 = b"Magic server to client signing constant"
_AUTH_MAGIC2 = b"Pad to make it do more than one iteration"


# --- RFC 1320 MD4 -------------------------------------------------------------------

_MASK = 0xFFFFFFFF
_ROUND1_SHIFTS = (3, 7, 11, 19)
_ROUND2_SHIFTS = (3, 5, 9, 13)
_ROUND3_SHIFTS = (3, 9, 11, 15)
_ROUND2_ORDER = (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
_ROUND3_ORDER = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _MASK


def md4(data: bytes) -> bytes:
    """Return the 16-byte RFC 1320 MD4 digest of ``data``.

    MD4 is broken as a hash; MS-CHAPv2 still mandates it for the NT password hash.
    """
    length_bits = (len(data) * 8) & 0xFFFFFFFFFFFFFFFF
    padded = bytes(data) + b"\x80" + bytes((55 - len(data)) % 64) + struct.pack("<Q", length_bits)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for offset in range(0, len(padded), 64):
        x = struct.unpack_from("<16I", padded, offset)
        aa, bb, cc, dd = a, b, c, d
        for i in range(16):
            f = (b & c) | (~b & d)
            a, b, c, d = d, _rotl((a + f + x[i]) & _MASK, _ROUND1_SHIFTS[i % 4]), b, c
        for i in range(16):
            g = (b & c) | (b & d) | (c & d)
            k = _ROUND2_ORDER[i]
            a, b, c, d = d, _rotl((a + g + x[k] + 0x5A827999) & _MASK, _ROUND2_SHIFTS[i % 4]), b, c
        for i in range(16):
            h = b ^ c ^ d
            k = _ROUND3_ORDER[i]
            a, b, c, d = d, _rotl((a + h + x[k] + 0x6ED9EBA1) & _MASK, _ROUND3_SHIFTS[i % 4]), b, c
        a, b, c, d = (a + aa) & _MASK, (b + bb) & _MASK, (c + cc) & _MASK, (d + dd) & _MASK
    return struct.pack("<4I", a, b, c, d)


# --- RFC 2759 / RFC 3079 ------------------------------------------------------------


def _sha1(*parts: bytes) -> bytes:
    digest = hashlib.sha1(usedforsecurity=False)  # mandated by RFC 2759/3079
    for part in parts:
        digest.update(part)
    return digest.digest()


def _check_length(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise UsageError(f"{name} must be {length} bytes, not {len(value)}")


def nt_password_hash(password: str) -> bytes:
    """Return NtPasswordHash (RFC 2759 8.3): MD4 of the password in UTF-16LE.

    Characters outside the BMP become surrogate pairs and lone surrogates are
    kept as code units, as Windows does. pppd computes a different hash for
    non-ASCII passwords: see :func:`pppd_password_hash`.
    """
    return md4(password.encode("utf-16-le", "surrogatepass"))


def pppd_password_hash(password: str) -> bytes:
    """Return the NT password hash exactly as pppd computes it.

    pppd (2.4.x and 2.5.x ``chap_ms.c`` ``ascii2unicode``) widens each *byte* of
    the secret to 16 bits instead of converting it to UTF-16, and truncates the
    secret to 256 bytes. The secret is taken as UTF-8 (surrogate escapes, as
    produced by ``os.fsdecode``, give back the original bytes). For ASCII
    passwords of up to 256 characters this equals :func:`nt_password_hash`.
    """
    secret = password.encode("utf-8", "surrogateescape")[:_PPPD_MAXSECRETLEN]
    return md4(secret.decode("latin-1").encode("utf-16-le"))


def challenge_hash(
    peer_challenge: bytes, authenticator_challenge: bytes, username: str | bytes
) -> bytes:
    """Return ChallengeHash (RFC 2759 8.2): the first 8 bytes of a SHA-1.

    ``username`` is the Name of the client's Response (a ``str`` is UTF-8
    encoded); a ``DOMAIN\\`` prefix is removed first, as Windows and pppd do.
    Both challenges must be 16 bytes.
    """
    _check_length("peer challenge", peer_challenge, _CHALLENGE_LENGTH)
    _check_length("authenticator challenge", authenticator_challenge, _CHALLENGE_LENGTH)
    name = username.encode("utf-8", "surrogateescape") if isinstance(username, str) else username
    name = name.rpartition(b"\\")[2]
    return _sha1(peer_challenge, authenticator_challenge, name)[:8]


def generate_authenticator_response(
    password: str | None,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: str | bytes,
    *,
    password_hash: bytes | None = None,
) -> str:
    """Return the AuthenticatorResponse ``"S="`` + 40 upper-case hex (RFC 2759 8.7).

    The server puts it in its Success message; a match proves it knows the
    password. Give either ``password`` (hashed with :func:`nt_password_hash`) or
    ``password_hash`` (16 bytes, e.g. from :func:`pppd_password_hash`).
    ``nt_response`` is 24 bytes, the challenges 16 bytes each.
    """
    phh = md4(_password_hash(password, password_hash))
    _check_length("NT-Response", nt_response, _NT_RESPONSE_LENGTH)
    digest = _sha1(phh, nt_response, _AUTH_MAGIC1)
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return "S=" + _sha1(digest, challenge, _AUTH_MAGIC2).hex().upper()


def _password_hash(password: str | None, password_hash: bytes | None) -> bytes:
    if password is not None and password_hash is None:
        return nt_password_hash(password)
    if password is None and password_hash is not None:
        _check_length("password hash", password_hash, _KEY_LENGTH)
        return password_hash
    raise UsageError("give exactly one of password and password_hash")


def mppe_keys_from_password_hash(password_hash: bytes, nt_response: bytes) -> tuple[bytes, bytes]:
    """Return the client's (send key, receive key) from a 16-byte password hash.

    This is :func:`mschapv2_mppe_keys` for a caller that already has the hash.
    """
    _check_length("password hash", password_hash, _KEY_LENGTH)
    _check_length("NT-Response", nt_response, _NT_RESPONSE_LENGTH)
    master_key = _sha1(md4(password_hash), nt_response, _MASTER_KEY_MAGIC)[:_KEY_LENGTH]
    send = _sha1(master_key, _SHS_PAD1, _SEND_KEY_MAGIC, _SHS_PAD2)[:_KEY_LENGTH]
    receive = _sha1(master_key, _SHS_PAD1, _RECEIVE_KEY_MAGIC, _SHS_PAD2)[:_KEY_LENGTH]
    return send, receive


def mschapv2_mppe_keys(password: str, nt_response: bytes) -> tuple[bytes, bytes]:
    """Return the MS-CHAPv2 client's (send key, receive key), 16 bytes each.

    RFC 3079 3.4: MasterKey = SHA1(PasswordHashHash | NT-Response | Magic1)[:16];
    the send key uses Magic2 ("On the client side, this is the send key..."), the
    receive key Magic3. The server's send key is the client's receive key.
    ``nt_response`` is the 24-byte NT-Response of the client's CHAP Response.
    The password is hashed with :func:`nt_password_hash`.
    """
    return mppe_keys_from_password_hash(nt_password_hash(password), nt_response)


# --- [MS-SSTP] crypto binding -------------------------------------------------------


def _fit(key: bytes, length: int) -> bytes:
    return key[:length].ljust(length, b"\x00")


def hlak(send_key: bytes | None = None, recv_key: bytes | None = None) -> bytes:
    """Return the 32-byte HLAK of the client ([MS-SSTP] 3.2.5.2).

    * MS-CHAPv2 and EAP-MSCHAPv2: ``hlak(send, recv)`` is the client's
      MasterSendKey | MasterReceiveKey, each half zero-padded or truncated to 16
      bytes; a missing half is zeros.
    * A ``send_key`` of 32 bytes or more (the EAP-TLS MSK, or pppd 2.5's 32-byte
      EAP keys) gives its first 32 bytes and ``recv_key`` is ignored, as the
      current [MS-SSTP] and sstp-client do.
    * No keys (PAP, CHAP-MD5, no authentication): 32 zero bytes.
    """
    if send_key is not None and len(send_key) >= HLAK_LENGTH:
        return bytes(send_key[:HLAK_LENGTH])
    half = HLAK_LENGTH // 2
    return _fit(send_key or b"", half) + _fit(recv_key or b"", half)


def _algorithm(hash_protocol: HashProtocol) -> str:
    """The hashlib name of a [MS-SSTP] hash protocol (SHA-1 is CERT_HASH_PROTOCOL_SHA1)."""
    if hash_protocol == HASH_PROTOCOL_SHA1:
        return "sha1"
    if hash_protocol == HASH_PROTOCOL_SHA256:
        return "sha256"
    raise UsageError(f"hash protocol must be 1 (SHA-1) or 2 (SHA-256), not {hash_protocol!r}")


def _digest_size(algorithm: str) -> int:
    return 20 if algorithm == "sha1" else 32


def _hmac(algorithm: str, key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, algorithm)


def cert_hash(der: bytes, hash_protocol: HashProtocol) -> bytes:
    """Return the 32-byte hash of the server's DER leaf certificate.

    SHA-1 (``hash_protocol`` 1) is zero-padded from 20 to 32 bytes; SHA-256 is 2.
    """
    return _fit(hashlib.new(_algorithm(hash_protocol), der).digest(), _FIELD_LENGTH)


def cmk(hash_protocol: HashProtocol, hlak: bytes) -> bytes:
    """Return the Compound MAC Key ([MS-SSTP] 3.2.5.2).

    CMK = HMAC-H(HLAK, "SSTP inner method derived CMK" | LEN | 0x01), LEN the
    digest length as a little-endian u16: 20 bytes for SHA-1, 32 for SHA-256.
    ``hlak`` must be 32 bytes.
    """
    algorithm = _algorithm(hash_protocol)
    _check_length("HLAK", hlak, HLAK_LENGTH)
    seed = _CMK_SEED + struct.pack("<H", _digest_size(algorithm)) + b"\x01"
    return _hmac(algorithm, hlak, seed)


def compound_mac(hash_protocol: HashProtocol, hlak: bytes, message: bytes) -> bytes:
    """Return the 32-byte Compound MAC: HMAC-H(CMK, message), zero-padded.

    ``message`` is the whole 112-byte CALL_CONNECTED with the MAC field zeroed.
    """
    algorithm = _algorithm(hash_protocol)
    return _fit(_hmac(algorithm, cmk(hash_protocol, hlak), message), _FIELD_LENGTH)


def call_connected(
    hash_protocol: HashProtocol, nonce: bytes, cert_hash: bytes, hlak: bytes
) -> bytes:
    """Return the complete 112-byte CALL_CONNECTED packet, Compound MAC filled in.

    ``hash_protocol`` is exactly one of 1 (SHA-1) or 2 (SHA-256); ``nonce`` is the
    server's 32-byte nonce from CALL_CONNECT_ACK; ``cert_hash`` is the 32-byte
    value of :func:`cert_hash` (a bare 20-byte SHA-1 digest is zero-padded);
    ``hlak`` is the 32-byte value of :func:`hlak`.
    """
    _algorithm(hash_protocol)
    _check_length("nonce", nonce, _NONCE_LENGTH)
    if hash_protocol == HASH_PROTOCOL_SHA1 and len(cert_hash) == _digest_size("sha1"):
        cert_hash = _fit(cert_hash, _FIELD_LENGTH)
    _check_length("certificate hash", cert_hash, _FIELD_LENGTH)
    _check_length("HLAK", hlak, HLAK_LENGTH)
    # Built by the codec (the 112-byte [MS-SSTP] 4.7 vector test holds it to the bytes):
    # first with the MAC field zeroed, which is what the MAC covers, then with the MAC.
    unsigned = _call_connected_packet(hash_protocol, nonce, cert_hash, bytes(_FIELD_LENGTH))
    mac = compound_mac(hash_protocol, hlak, unsigned)
    return _call_connected_packet(hash_protocol, nonce, cert_hash, mac)


def _call_connected_packet(
    hash_protocol: HashProtocol, nonce: bytes, cert_hash: bytes, mac: bytes
) -> bytes:
    binding = CryptoBinding(
        hash_protocol=hash_protocol, nonce=nonce, cert_hash=cert_hash, compound_mac=mac
    )
    return ControlPacket(message_type=MessageType.CALL_CONNECTED, attributes=(binding,)).encode()
