"""Binary (safetensors) against JSON for the largest tensors ``/rnn/forward`` takes and gives.

End to end, as a client sees it: build the request body, POST it over a keep-alive
connection, read the answer and turn it into torch tensors (``json.loads`` + ``torch.tensor``
for JSON, ``safetensors.torch.load`` for the binary form). Two cases, each at the default
``max_tensor_elements`` (262,144):

* **answer**: a seeded ``nn.RNN(4, 64)`` over input [512, 8, 4] → ``output`` [512, 8, 64], the
  262,144 floats of the issue (the request is small, 16k floats, sent as JSON both times);
* **request**: input [512, 8, 64] (262,144 floats) into ``nn.RNN(64, 4)``, sent as JSON or as
  safetensors (the answer is small, 16k floats, JSON both times).

One ``seqlab serve`` (a fresh data dir; ``max_body_bytes`` raised to 8 MiB so that the JSON
request is allowed at all) pinned to CPU 0, the client on CPU 1. Each form gets a warm-up, then
``--rounds`` rounds of ``--requests`` sequential requests alternate JSON / binary, binary / JSON;
the best round of each is kept. Answers are checked equal.

    python -m bench.binary [--requests 20] [--rounds 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load, save

from bench.servers import HOST, start_server, stop_server

BINARY = "application/vnd.safetensors"
# A case: the body (or what builds it, timed with the request), its type, the Accept, and how
# the client turns the answer into a tensor.
Body = bytes | Callable[[], bytes]
Decode = Callable[[bytes], torch.Tensor]


def post(
    connection: http.client.HTTPConnection, body: bytes, content_type: str, accept: str
) -> bytes:
    connection.request(
        "POST",
        "/rnn/forward",
        body=body,
        headers={"content-type": content_type, "accept": accept},
    )
    answer = connection.getresponse()
    content = answer.read()
    if answer.status != 200:
        raise SystemExit(f"error: {answer.status} {content[:300]!r}")
    return content


def answer_case(binary: bool) -> tuple[Body, str, str, Decode]:
    x = torch.rand(512, 8, 4, generator=torch.Generator().manual_seed(0))
    body = json.dumps({"rnn": {"input_size": 4, "hidden_size": 64, "seed": 0}, "input": x.tolist()})
    if binary:
        return body.encode(), "application/json", BINARY, lambda c: load(c)["output"]
    return (
        body.encode(),
        "application/json",
        "application/json",
        lambda c: torch.tensor(json.loads(c)["output"]["values"]),
    )


def request_case(binary: bool) -> tuple[Body, str, str, Decode]:
    x = torch.rand(512, 8, 64, generator=torch.Generator().manual_seed(0))
    layer = {"input_size": 64, "hidden_size": 4, "seed": 0}

    def decode(content: bytes) -> torch.Tensor:
        return torch.tensor(json.loads(content)["output"]["values"])

    if binary:
        # Building the body is part of the client's work: timed with the request.
        return (
            lambda: save({"input": x}, metadata={"request": json.dumps({"rnn": layer})}),
            BINARY,
            "application/json",
            decode,
        )
    return (
        lambda: json.dumps({"rnn": layer, "input": x.tolist()}).encode(),
        "application/json",
        "application/json",
        decode,
    )


def run(connection, case, requests: int) -> tuple[float, int, torch.Tensor]:
    body, content_type, accept, decode = case
    started = time.perf_counter()
    for _ in range(requests):
        payload = body() if callable(body) else body
        tensor = decode(post(connection, payload, content_type, accept))
    elapsed = (time.perf_counter() - started) / requests
    return elapsed, len(payload), tensor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    arguments = parser.parse_args()
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(
            "seqlab",
            "",
            {
                "SEQLAB_DATA_DIR": data_dir,
                "SEQLAB_TRAIN_DEMO_MODEL": "false",
                "SEQLAB_LIMITS__MAX_BODY_BYTES": str(8 * 1024 * 1024),
            },
            Path(data_dir),
            cpus="0",
            seqlab_serve=True,
        )
        try:
            connection = http.client.HTTPConnection(HOST, server.port, timeout=120)
            print(
                f"/rnn/forward, {arguments.requests} requests a round, best of {arguments.rounds}"
            )
            print("| case | JSON ms | binary ms | binary speed-up | JSON body | binary body |")
            print("|---|---:|---:|---:|---:|---:|")
            for name, make in (
                ("answer: output 262,144 floats", answer_case),
                ("request: input 262,144 floats", request_case),
            ):
                best: dict[bool, float] = {}
                sizes: dict[bool, int] = {}
                results: dict[bool, torch.Tensor] = {}
                for binary in (False, True):
                    run(connection, make(binary), 2)  # warm-up
                for round_number in range(arguments.rounds):
                    order = (False, True) if round_number % 2 == 0 else (True, False)
                    for binary in order:
                        seconds, size, tensor = run(connection, make(binary), arguments.requests)
                        best[binary] = min(best.get(binary, float("inf")), seconds)
                        sizes[binary] = size
                        results[binary] = tensor
                assert torch.equal(results[False], results[True]), "the two forms disagree"
                # The answer's size (answer case) or the request's (request case).
                if name.startswith("answer"):
                    sizes = {b: len(post(connection, *make(b)[:3])) for b in (False, True)}
                print(
                    f"| {name} | {best[False] * 1000:.1f} | {best[True] * 1000:.1f} | "
                    f"{best[False] / best[True]:.1f}× | {sizes[False] / 1e6:.2f} MB | "
                    f"{sizes[True] / 1e6:.2f} MB |"
                )
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
