# Types of the optional C accelerator (_hdlc.c); hdlc.PyPacketDecoder is the reference.
class PacketDecoder:
    bad_fcs: int
    too_short: int
    aborted: int
    oversized: int
    too_big: int
    buffered: int
    def __init__(self, max_length: int = ..., max_payload: int = ...) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> bytes: ...

def encode_packets(data: bytes, accm: int = ...) -> tuple[bytes, int]: ...
