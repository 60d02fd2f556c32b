"""Tar framing, strict and streamed: regular files written as a stream of chunks, and read back
one header at a time, accepting nothing but plain regular-file headers.

Written: a GNU header per file (plain ustar below 8 GiB, a base-256 size above, never a pax or
long-name header), its data padded to 512 bytes, then two zero blocks; the length is known
before the first byte. Read: a header counts only with the ustar or GNU magic and a valid
checksum, and a link, a directory, a device or an extension header is refused by its type, so
the caller decides from plain names and sizes alone. :mod:`tarfile` is used only to format a
header (our own input), never to parse one.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

BLOCK = 512
CHUNK = 1 << 20
ZERO_BLOCK = bytes(BLOCK)
_REGULAR = (b"0", b"\0")
_POSIX_MAGIC, _GNU_MAGIC = b"ustar\x0000", b"ustar  \0"


class TarError(ValueError):
    """Bytes that are not a tar header of a regular file; ``kind`` says how: ``not-tar`` (no
    magic or a wrong checksum), ``bad-field`` (a size or a name that cannot be read) or
    ``not-regular`` (a link, directory, device or extension header)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass(frozen=True)
class Header:
    """A regular file's header: its name (as written, never used as a path here) and size."""

    name: str
    size: int


@dataclass(frozen=True)
class Member:
    """One file to write: its name, its size and an open handle to read it from."""

    name: str
    size: int
    handle: BinaryIO


def padding(size: int) -> int:
    """Zero bytes after ``size`` bytes of data, up to the next block."""
    return -size % BLOCK


# -- writing -------------------------------------------------------------------------------


def header_bytes(name: str, size: int, mtime: int = 0) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uname = info.gname = ""
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")


def stream_size(members: list[Member]) -> int:
    """The bytes :func:`stream_chunks` yields for ``members``."""
    return sum(BLOCK + member.size + padding(member.size) for member in members) + 2 * BLOCK


def stream_chunks(members: list[Member], mtime: int = 0) -> Iterator[bytes]:
    """The tar's bytes, member after member, read in chunks (never the whole in memory)."""
    for member in members:
        yield header_bytes(member.name, member.size, mtime)
        remaining = member.size
        while remaining:
            chunk = member.handle.read(min(CHUNK, remaining))
            if not chunk:
                raise OSError(f"{member.name} ended {remaining} bytes early while written")
            remaining -= len(chunk)
            yield chunk
        yield bytes(padding(member.size))
    yield ZERO_BLOCK * 2


# -- reading -------------------------------------------------------------------------------


def parse_header(block: bytes) -> Header:
    """A 512-byte block as the header of a regular file, or :class:`TarError`."""
    magic = block[257:265]
    if magic not in (_POSIX_MAGIC, _GNU_MAGIC) or not _checksum_ok(block):
        raise TarError("not-tar", "not a tar header (no ustar magic, or a wrong checksum)")
    name = _name(block, posix=magic == _POSIX_MAGIC)
    kind = block[156:157]
    if kind not in _REGULAR:
        raise TarError(
            "not-regular",
            f"member {name!r} is not a regular file (tar type {kind.decode('latin-1')!r})",
        )
    return Header(name, _size(block[124:136]))


def _checksum_ok(block: bytes) -> bool:
    # The sum of the header's bytes with the checksum field itself counted as spaces.
    try:
        stored = int(block[148:156].rstrip(b"\0 ").decode("ascii") or "-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 8 * 32 + sum(block[156:])


def _name(block: bytes, posix: bool) -> str:
    raw = block[:100].split(b"\0", 1)[0]
    if posix:  # a POSIX ustar prefix holds the name's directories
        prefix = block[345:500].split(b"\0", 1)[0]
        raw = prefix + b"/" + raw if prefix else raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TarError("bad-field", f"member name {raw!r} is not UTF-8") from None


def _size(field: bytes) -> int:
    if field[0] == 0x80:  # GNU base-256, positive (0xff would be a negative size)
        return int.from_bytes(field[1:], "big")
    try:
        size = int(field.rstrip(b"\0 ").decode("ascii") or "0", 8)
    except ValueError:
        size = -1
    if size < 0:
        raise TarError("bad-field", "a member's size cannot be read")
    return size


def read_exactly(source: BinaryIO, size: int) -> bytes | None:
    """``size`` bytes from ``source``, or None when it ends first."""
    data = source.read(size)
    return data if len(data) == size else None
