"""dsp/__init__.py: the package stands alone."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def test_dsp_imports_nothing_from_the_rest_of_the_server():
    code = "import sys, dsp; print(sorted({m.split('.')[0] for m in sys.modules} & {'voice', 'router', 'adapters'}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

