import json

import pytest
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.errors import CheckpointError
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.tokenizer import TokenizerConfig
from models.vocab import Vocab


def _model(tie: bool = False, cell: str = "lstm") -> tuple[RNNLanguageModel, Vocab]:
    torch.manual_seed(0)
    vocab = Vocab.build([["我", "爱", "学习", "自然语言", "处理", "机器"]])
    config = LanguageModelConfig(
        vocab_size=len(vocab),
        embedding_dim=8,
        hidden_size=8,
        num_layers=2,
        cell=cell,
        tie_weights=tie,
    )
    return RNNLanguageModel(config).eval(), vocab


@pytest.mark.parametrize(("tie", "cell"), [(False, "lstm"), (True, "gru"), (False, "rnn")])
def test_round_trip_gives_identical_outputs(tmp_path, tie, cell):
    model, vocab = _model(tie, cell)
    tokenizer = TokenizerConfig(user_words=("自然语言处理",), normalization="nfkc")
    save_checkpoint(tmp_path / "v1", model, vocab, tokenizer, {"created_by": "test"})
    loaded = load_checkpoint(tmp_path / "v1")
    ids = torch.tensor([[2, 3, 4, 5, 6]])
    expected, _ = model(ids)
    actual, _ = loaded.model(ids)
    assert torch.equal(expected, actual)
    assert loaded.vocab == vocab
    assert loaded.tokenizer == tokenizer
    assert loaded.metadata == {"created_by": "test"}
    assert not loaded.model.training
    if tie:
        assert loaded.model.decoder.weight is loaded.model.embedding.weight


def test_checkpoint_files_are_safetensors_and_readable_json(tmp_path):
    model, vocab = _model()
    path = save_checkpoint(tmp_path / "v1", model, vocab, TokenizerConfig())
    assert sorted(p.name for p in path.iterdir()) == ["checkpoint.json", "model.safetensors"]
    document = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
    assert document["format"] == "seqlab.checkpoint"
    assert document["vocab"]["tokens"][3] == "我"
    assert list(tmp_path.iterdir()) == [path]  # no staging directory left behind


def test_existing_checkpoints_are_never_overwritten(tmp_path):
    model, vocab = _model()
    save_checkpoint(tmp_path / "v1", model, vocab, TokenizerConfig())
    with pytest.raises(CheckpointError, match="already exists"):
        save_checkpoint(tmp_path / "v1", model, vocab, TokenizerConfig())


def test_a_directory_that_is_not_ours_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint\.json"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoint.json").write_text('{"hello": "world"}')
    with pytest.raises(CheckpointError, match="not a seqlab checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoint.json").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match="not a seqlab checkpoint"):
        load_checkpoint(tmp_path)


def test_damaged_weights_are_a_clear_error(tmp_path):
    model, vocab = _model()
    path = save_checkpoint(tmp_path / "v1", model, vocab, TokenizerConfig())
    (path / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        load_checkpoint(path)


def test_weights_of_another_architecture_are_rejected(tmp_path):
    model, vocab = _model()
    path = save_checkpoint(tmp_path / "v1", model, vocab, TokenizerConfig())
    document = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
    document["model"]["hidden_size"] = 16
    (path / "checkpoint.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        load_checkpoint(path)


def test_newer_format_versions_are_refused(tmp_path):
    model, vocab = _model()
    path = save_checkpoint(tmp_path / "v1", model, vocab, TokenizerConfig())
    document = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
    document["format_version"] = 99
    (path / "checkpoint.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)
