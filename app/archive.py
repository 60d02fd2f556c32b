"""The model archive: one version of a model in one file, to move it between services.

An archive (``<name>-v<version>.seqlab``, media type ``application/x-tar``) is an uncompressed
tar of exactly three regular files, in this order::

    manifest.json       format "seqlab-model", format_version 1, the model's name, version,
                        created_at, metrics, source, tokenizer and model config, and the sha256
                        and size of each member below
    checkpoint.json     the checkpoint's JSON as models.checkpoint writes it (config, tokenizer
                        settings, vocabulary)
    model.safetensors   the checkpoint's weights

Why a tar, uncompressed: the weights are float noise that compression barely shrinks; a tar is
written as a stream whose length is known before its first byte (no temporary copy, a
``Content-Length`` for the download) and read front to back (from a pipe too); and any tar tool
lists and unpacks it. The manifest comes first, so a foreign archive is refused after its first
header. Why a reader of its own (:mod:`app.tar_stream`) rather than :mod:`tarfile`: an archive
comes from the network, and this reader accepts exactly what an export writes (three regular
files under fixed names, ustar or GNU headers with valid checksums), so a link, a device, a
directory, a pax or long-name header, a name with a path in it or a fourth member is refused
before anything is written, no name from an archive ever becomes a path, and no parser bug of
tarfile's (its pax headers have had denial-of-service bugs) is reachable from a request.

Nothing is unpickled: JSON and safetensors only. The checksums find damage (a truncated copy, a
flipped byte), not forgery: whoever rewrites a member can rewrite the manifest too, so an archive
is trusted as far as its sender is, and its model is still checked to load before it is kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from app.errors import InvalidInputError
from app.tar_stream import (
    BLOCK,
    CHUNK,
    ZERO_BLOCK,
    Header,
    Member,
    TarError,
    padding,
    parse_header,
    read_exactly,
)
from models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, fsync_directory

FORMAT = "seqlab-model"
FORMAT_VERSION = 1
MEDIA_TYPE = "application/x-tar"
# What an import body may be labelled: the tar itself, or bytes of no stated kind.
MEDIA_TYPES = (MEDIA_TYPE, "application/octet-stream")
EXTENSION = ".seqlab"
MANIFEST_FILE = "manifest.json"
MEMBERS = (MANIFEST_FILE, CONFIG_FILE, WEIGHTS_FILE)
# The JSON members are read into memory: bounded whatever the archive's size (a manifest holds
# settings and metrics; checkpoint.json a vocabulary of at most tens of thousands of words).
MAX_MANIFEST_BYTES = 1 << 20
MAX_CHECKPOINT_JSON_BYTES = 64 << 20


class ArchiveError(InvalidInputError):
    """An archive that is not ours or is damaged; ``reason`` says which, in one word:
    ``not-an-archive``, ``foreign``, ``unsafe-member``, ``truncated``, ``missing-member``,
    ``damaged``, ``checksum-mismatch``, ``format-version`` or ``invalid-model``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, field="body", reason=reason)
        self.reason = reason


@dataclass(frozen=True)
class FileEntry:
    """A member's checksum and size, as the manifest lists it."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What an archive says it holds (``manifest.json``), validated."""

    name: str
    version: int
    created_at: str
    metrics: dict[str, Any]
    source: dict[str, Any]
    tokenizer: dict[str, Any]
    model: dict[str, Any]
    files: dict[str, FileEntry]
    digest: str  # sha256 of manifest.json: names the archive's whole content


def manifest_document(
    *,
    name: str,
    version: int,
    created_at: str,
    metrics: dict[str, Any],
    source: dict[str, Any],
    checkpoint: dict[str, Any],
    files: dict[str, FileEntry],
) -> dict[str, Any]:
    """The manifest of a version whose checkpoint JSON is ``checkpoint`` and whose other
    members are ``files``."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "created_at": created_at,
        "metrics": metrics,
        "source": source,
        "tokenizer": checkpoint.get("tokenizer"),
        "model": checkpoint.get("model"),
        "files": {
            key: {"sha256": entry.sha256, "size": entry.size} for key, entry in files.items()
        },
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """``manifest.json`` as written: sorted and indented, so equal content is equal bytes."""
    return json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode()


def file_entry(handle: BinaryIO) -> FileEntry:
    """Checksum and size of an open file, read from its start; left at its start again."""
    digest = hashlib.sha256()
    size = 0
    handle.seek(0)
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    handle.seek(0)
    return FileEntry(digest.hexdigest(), size)


def archive_members(manifest: bytes, checkpoint: BinaryIO, weights: BinaryIO) -> list[Member]:
    """An archive's members in their order, the files' sizes those of their open handles."""
    return [
        Member(MANIFEST_FILE, len(manifest), io.BytesIO(manifest)),
        Member(CONFIG_FILE, os.fstat(checkpoint.fileno()).st_size, checkpoint),
        Member(WEIGHTS_FILE, os.fstat(weights.fileno()).st_size, weights),
    ]


def read_archive(source: BinaryIO, destination: Path) -> Manifest:
    """Read an archive front to back, writing ``checkpoint.json`` and ``model.safetensors``
    into the existing directory ``destination`` (synced to disk); the validated manifest.

    Raises :class:`ArchiveError` for anything but a whole archive of ours whose members match
    their checksums; then ``destination`` may hold partial files (the caller removes it).
    """
    manifest: Manifest | None = None
    read: dict[str, FileEntry] = {}
    while True:
        block = source.read(BLOCK)
        if not block or block == ZERO_BLOCK:
            break  # the end marker (or the end of a copy that lost only the marker)
        header = _header(block, first=not read)
        _check_member(header, read, manifest)
        if header.name == MANIFEST_FILE:
            manifest = parse_manifest(_read(source, header.size, MANIFEST_FILE))
            read[MANIFEST_FILE] = FileEntry(manifest.digest, header.size)
        else:
            read[header.name] = _copy(source, header, destination / header.name)
        _read(source, padding(header.size), header.name)
    if manifest is None:
        raise ArchiveError(
            "not-an-archive", "no seqlab model archive in the body (it is empty, or an empty tar)"
        )
    for name, expected in manifest.files.items():
        _check_entry(name, read.get(name), expected)
    fsync_directory(destination)
    return manifest


def _header(block: bytes, first: bool) -> Header:
    """The tar header in ``block``; the first one decides whether this is a tar at all."""
    if len(block) < BLOCK:
        if first:
            raise ArchiveError(
                "not-an-archive", "the body is not a seqlab model archive (not a tar file)"
            )
        raise ArchiveError("truncated", "the archive ends inside a tar header (a partial copy?)")
    try:
        return parse_header(block)
    except TarError as error:
        if error.kind == "not-regular":
            raise ArchiveError(
                "unsafe-member", f"{error}: a seqlab model archive holds only regular files"
            ) from None
        if first and error.kind == "not-tar":
            raise ArchiveError(
                "not-an-archive", "the body is not a seqlab model archive (not a tar file)"
            ) from None
        raise ArchiveError("damaged", f"a tar header of the archive is damaged: {error}") from None


def _check_member(header: Header, read: dict[str, FileEntry], manifest: Manifest | None) -> None:
    """Only our three names, each once, the manifest first, within its size."""
    name = header.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or len(parts) > 1:
        raise ArchiveError(
            "unsafe-member",
            f"member name {name!r} has a path in it: a seqlab model archive holds three "
            f"files at its top ({', '.join(MEMBERS)})",
        )
    if name not in MEMBERS:
        raise ArchiveError(
            "foreign",
            f"{name!r} is not a member of a seqlab model archive ({', '.join(MEMBERS)})",
        )
    if name in read:
        raise ArchiveError("damaged", f"the archive holds {name!r} twice")
    if manifest is None and name != MANIFEST_FILE:
        raise ArchiveError(
            "damaged", f"the archive's first member is {name!r}, not {MANIFEST_FILE}"
        )
    largest = {MANIFEST_FILE: MAX_MANIFEST_BYTES, CONFIG_FILE: MAX_CHECKPOINT_JSON_BYTES}
    if header.size > largest.get(name, header.size):
        raise ArchiveError("damaged", f"{name} is over {largest[name]:,} bytes")
    if manifest is not None and header.size != manifest.files[name].size:
        raise ArchiveError(
            "checksum-mismatch",
            f"{name} holds {header.size} bytes; the manifest says {manifest.files[name].size}",
        )


def _read(source: BinaryIO, size: int, name: str) -> bytes:
    data = read_exactly(source, size)
    if data is None:
        raise ArchiveError("truncated", f"the archive ends inside {name} (a partial copy?)")
    return data


def _copy(source: BinaryIO, header: Header, target: Path) -> FileEntry:
    """Copy a member's data to ``target`` (a name of ours, never the archive's), hashing it."""
    digest = hashlib.sha256()
    with open(target, "wb") as handle:
        remaining = header.size
        while remaining:
            chunk = _read(source, min(CHUNK, remaining), header.name)
            digest.update(chunk)
            handle.write(chunk)
            remaining -= len(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    return FileEntry(digest.hexdigest(), header.size)


def _check_entry(name: str, found: FileEntry | None, expected: FileEntry) -> None:
    if found is None:
        raise ArchiveError(
            "missing-member", f"the archive has no {name} (a partial copy, or not ours)"
        )
    if found != expected:
        raise ArchiveError(
            "checksum-mismatch",
            f"{name} does not match the manifest (sha256 {found.sha256[:16]}…, "
            f"{found.size} bytes; the manifest says {expected.sha256[:16]}…, "
            f"{expected.size} bytes): the archive was damaged or changed",
        )


def parse_manifest(data: bytes) -> Manifest:
    """``manifest.json`` read and checked: ours, a version this seqlab reads, every field."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArchiveError("damaged", f"{MANIFEST_FILE} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ArchiveError("foreign", f"{MANIFEST_FILE} is not a '{FORMAT}' manifest")
    if document.get("format_version") != FORMAT_VERSION:
        raise ArchiveError(
            "format-version",
            f"the archive has format version {document.get('format_version')!r}; this seqlab "
            f"reads version {FORMAT_VERSION} (export it again with this seqlab's version)",
        )
    return Manifest(
        name=_field(document, "name", str),
        version=_field(document, "version", int),
        created_at=_field(document, "created_at", str),
        metrics=_field(document, "metrics", dict),
        source=_field(document, "source", dict),
        tokenizer=_field(document, "tokenizer", dict),
        model=_field(document, "model", dict),
        files=_files(_field(document, "files", dict)),
        digest=hashlib.sha256(data).hexdigest(),
    )


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ArchiveError("damaged", f"{MANIFEST_FILE} has no valid {name!r}")
    return value


def _files(listed: dict[str, Any]) -> dict[str, FileEntry]:
    expected = set(MEMBERS) - {MANIFEST_FILE}
    if set(listed) != expected:
        raise ArchiveError(
            "damaged", f"{MANIFEST_FILE} lists {sorted(listed)}, not {sorted(expected)}"
        )
    files = {}
    for name, entry in listed.items():
        sha256 = entry.get("sha256") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        valid_sha = isinstance(sha256, str) and len(sha256) == 64
        if not valid_sha or set(sha256) - set("0123456789abcdef"):
            raise ArchiveError("damaged", f"{MANIFEST_FILE} has no valid sha256 for {name}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ArchiveError("damaged", f"{MANIFEST_FILE} has no valid size for {name}")
        files[name] = FileEntry(sha256, size)
    return files
