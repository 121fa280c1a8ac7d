"""Serving must not import PyTorch: the web app and CLI run on ONNX Runtime alone."""

from __future__ import annotations

import subprocess
import sys


def test_serving_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import eyescreen.cli, eyescreen.web.app, eyescreen.inference.predict, eyescreen.evaluation.report\n"
        "from eyescreen.inference.session import ModelSession\n"
        "ModelSession.from_dir(None)\n"
        "loaded = sorted(name for name in sys.modules if name == 'torch' or name.startswith('torch.'))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)

    assert result.stdout.strip() == ""
