"""One router per area; each handler resolves dependencies, calls one service, shapes the answer."""

from fastapi import Response


def name_model(response: Response, name: str, version: int) -> None:
    """Every answer that used a model says which: the ``Seqlab-Model: name@version`` header."""
    response.headers["Seqlab-Model"] = f"{name}@{version}"
