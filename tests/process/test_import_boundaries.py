from __future__ import annotations

import subprocess
import sys


def test_importing_schemas_does_not_import_torch() -> None:
    code = (
        "import sys, schemas, schemas.registry, schemas.daily_files; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
