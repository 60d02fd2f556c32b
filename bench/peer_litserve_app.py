"""The peer of ``bench.peer_litserve``: LitServe 0.2.19 serving the lesson's layer, exactly the
layer seqlab's ``/rnn/forward`` builds for ``{"rnn": {"input_size": 4, "hidden_size": 5,
"num_layers": 2, "seed": 0}}`` (``torch.manual_seed(0); nn.RNN(4, 5, num_layers=2)``), on the
CPU, one inference worker, one API server, at ``/predict``.

Runs only in an environment with litserve (never a dependency of seqlab):
``python -m bench.peer_litserve_app PORT`` from the repository root.
"""

from __future__ import annotations

import sys

import litserve
import torch


class LessonRNN(litserve.LitAPI):
    def setup(self, device: str) -> None:
        torch.manual_seed(0)
        self.layer = torch.nn.RNN(4, 5, num_layers=2).requires_grad_(False)

    def decode_request(self, request: dict) -> torch.Tensor:
        return torch.tensor(request["input"], dtype=torch.float32)  # (seq, batch, 4)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            return self.layer(x)

    def encode_response(self, result: tuple[torch.Tensor, torch.Tensor]) -> dict:
        output, hn = result
        # The same content as seqlab's answer: output and hn, with their shapes.
        return {
            "output": output.tolist(),
            "hn": hn.tolist(),
            "output_shape": list(output.shape),
            "hn_shape": list(hn.shape),
        }


if __name__ == "__main__":
    server = litserve.LitServer(LessonRNN(), accelerator="cpu", devices=1, workers_per_device=1)
    server.run(
        host="127.0.0.1",
        port=int(sys.argv[1]),
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
    )
