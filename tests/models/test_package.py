import subprocess
import sys

import pytest


def test_importing_models_does_not_import_the_web_stack():
    code = (
        "import sys, models; "
        "loaded = [m for m in ('fastapi', 'starlette', 'pydantic', 'app') if m in sys.modules]; "
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_the_tokenizer_imports_without_torch():
    # What a segmentation worker process imports (app.segmentation): jieba, not torch.
    code = "import sys, models.tokenizer; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_every_public_name_resolves_on_first_use():
    import models

    assert "Tokenizer" in models.__all__
    for name in models.__all__:
        assert getattr(models, name).__module__.startswith("models."), name
    with pytest.raises(AttributeError):
        models.NoSuchName  # noqa: B018
