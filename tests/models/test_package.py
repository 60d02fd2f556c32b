import subprocess
import sys


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
