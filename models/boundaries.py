"""Where one text ends and the next begins: a corpus into texts, texts into one id stream.

A model's boundary rule (recorded with its tokenizer settings) says what a *text* is in a
document: ``line`` (every non-blank line, the default), ``paragraph`` (lines up to a blank
line) or ``none`` (no boundaries: lines are concatenated, as before boundaries existed).
When the vocabulary has ``<eos>``, training streams put it after every text, as
pytorch/examples ``word_language_model`` does after every line; a model then learns what a
fresh start looks like, and reads every request's text from the state after ``<eos>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from models.errors import ConfigError

if TYPE_CHECKING:  # only annotations: the tokenizer imports this module without torch
    import torch

Boundary = Literal["line", "paragraph", "none"]
BOUNDARIES: tuple[str, ...] = ("line", "paragraph", "none")
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")  # a line of nothing but (Unicode) whitespace


def end_id(eos_id: int | None, boundary: Boundary) -> int | None:
    """The id that ends every text of a model: its ``<eos>``, unless its rule is ``none``
    (then nothing is marked, and a text starts from zeros)."""
    return None if boundary == "none" else eos_id


def split_texts(document: str, boundary: Boundary) -> list[str]:
    """The texts of ``document``, blank ones left out.

    ``line`` gives every non-blank line; ``paragraph`` each run of non-blank lines, joined with
    ``\\n``; ``none`` the whole document as one text (no text end is marked), as training read
    its texts before boundaries existed.
    """
    if boundary not in BOUNDARIES:
        raise ConfigError(
            f"boundary must be one of {BOUNDARIES}, not {boundary!r}", field="boundary"
        )
    if boundary == "paragraph":
        document = document.replace("\r\n", "\n")
        blocks = _BLANK_LINE.split(document)
        return [
            "\n".join(line for line in block.splitlines() if line.strip())
            for block in blocks
            if block.strip()
        ]
    if boundary == "none":
        return [document] if document.strip() else []
    return [line for line in document.splitlines() if line.strip()]


def join_stream(texts: Iterable[Sequence[int]], eos_id: int | None) -> list[int]:
    """One id stream: the texts in order, each followed by ``eos_id`` when there is one."""
    stream: list[int] = []
    for ids in texts:
        stream.extend(ids)
        if eos_id is not None:
            stream.append(eos_id)
    return stream


def split_stream(ids: torch.Tensor, eos_id: int) -> list[torch.Tensor]:
    """The texts of a stream, each with its closing ``eos_id`` (the last may lack it)."""
    ends = (ids == eos_id).nonzero().flatten().tolist()
    pieces: list[torch.Tensor] = []
    start = 0
    for end in ends:
        pieces.append(ids[start : end + 1])
        start = end + 1
    if start < len(ids):
        pieces.append(ids[start:])
    return pieces


def boundary_cut(ids: torch.Tensor, val_fraction: float, eos_id: int | None) -> int:
    """Where the held-out tail of a stream starts: ``val_fraction`` of it, moved to a start of
    a text when the stream marks texts, so that the tail is whole texts.

    The first text start at or after the fraction's cut is taken (a tail no longer than asked
    for); failing that, the last one before it, if that tail is at most twice as long as asked
    for. Otherwise (no ``<eos>``, or one long text across the cut) the cut stays at the
    fraction, inside a text.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError("val_fraction must be in [0, 1)", field="val_fraction")
    size = len(ids)
    cut = size - int(size * val_fraction)
    if eos_id is None or cut >= size:
        return cut
    starts = ((ids[:-1] == eos_id).nonzero().flatten() + 1).tolist()  # texts after the first
    after = [start for start in starts if start >= cut]
    if after:
        return after[0]
    before = [start for start in starts if size - start <= 2 * (size - cut)]
    return before[-1] if before else cut
