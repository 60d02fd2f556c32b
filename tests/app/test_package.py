"""The service's core (registry, jobs, corpora, errors) stays usable without the web stack."""

import subprocess
import sys

import pytest

CORE = ("app.registry", "app.jobs.manager", "app.corpora", "app.errors")


@pytest.mark.parametrize("module", CORE)
def test_importing_the_core_does_not_import_the_web_framework(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "loaded = [m for m in ('fastapi', 'starlette') if m in sys.modules]; "
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"importing {module} loads {result.stdout.strip()}"
