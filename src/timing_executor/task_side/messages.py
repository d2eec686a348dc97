"""The messages between an executor and a launcher: a header in JSON, then the
bytes of the blobs it names."""

# --8<-- [start:messages]
import json
import os


def encode_message(header: dict, blobs: dict[str, bytes] | None = None) -> bytes:
    """One message between an executor and a launcher: the length of the header
    (8 bytes), the header as JSON, then the bytes of each blob the header names."""
    blobs = blobs or {}
    sizes = {name: len(data) for name, data in blobs.items()}
    head = json.dumps({**header, "blobs": sizes}).encode()
    return b"".join([len(head).to_bytes(8, "big"), head, *blobs.values()])


class MessageReader:
    """Cuts a stream of bytes back into messages: ``(header, blobs)`` pairs."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict, dict[str, bytes]]]:
        """Take the next bytes of the stream; return the messages they complete."""
        self.buffer += data
        messages = []
        while len(self.buffer) >= 8:
            head_end = 8 + int.from_bytes(self.buffer[:8], "big")
            if len(self.buffer) < head_end:
                break
            header = json.loads(self.buffer[8:head_end])
            sizes = header.pop("blobs")
            if len(self.buffer) < head_end + sum(sizes.values()):
                break
            blobs, offset = {}, head_end
            for name, size in sizes.items():
                blobs[name] = bytes(self.buffer[offset : offset + size])
                offset += size
            del self.buffer[:offset]
            messages.append((header, blobs))
        return messages


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the file descriptor ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --8<-- [end:messages]
