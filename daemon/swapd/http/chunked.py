"""A sans-IO decoder of HTTP/1.1 chunked bodies, for the relay's hot path.

h11 yields one event per chunk, at a Python-level cost per event that
dominated the relay of fast event streams (thousands of small chunks a
second). This decoder takes whatever one socket read produced and returns
the payload bytes it contained in one piece, scanning with `bytes.find`.
"""

from __future__ import annotations

MAX_LINE = 4096  # a chunk-size or trailer line longer than this is an error


class ChunkedError(ValueError):
    """The body is not valid chunked encoding."""


class ChunkedDecoder:
    def __init__(self) -> None:
        self._buf = b""
        self._remaining = 0  # payload bytes left in the current chunk
        self._state = "size"  # size | data | crlf | trailer | done
        self.leftover = b""  # bytes after the end of the body (none from a sane server)

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> bytes:
        """Consume `data`; return the payload bytes it completed (possibly empty)."""
        buf = self._buf + data if self._buf else data
        pos = 0
        out: list[bytes] = []
        end = len(buf)
        while pos < end:
            state = self._state
            if state == "data":
                take = min(self._remaining, end - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = "crlf"
            elif state == "crlf":
                if end - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ChunkedError("missing CRLF after chunk data")
                pos += 2
                self._state = "size"
            elif state in ("size", "trailer"):
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    if end - pos > MAX_LINE:
                        raise ChunkedError("chunk header line too long")
                    break
                line = buf[pos:nl]
                pos = nl + 2
                if state == "trailer":
                    if not line:
                        self._state = "done"
                    continue
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ChunkedError(f"bad chunk size {line[:40]!r}") from None
                if size < 0:
                    raise ChunkedError("negative chunk size")
                if size == 0:
                    self._state = "trailer"
                else:
                    self._remaining = size
                    self._state = "data"
            else:  # done
                self.leftover += buf[pos:]
                pos = end
        self._buf = buf[pos:] if pos < end else b""
        return b"".join(out)
