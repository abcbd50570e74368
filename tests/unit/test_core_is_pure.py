"""The domain core must not depend on the AWS SDK (hexagonal shape)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import salesstream.core


def test_core_modules_import_without_boto3() -> None:
    modules = [f"salesstream.core.{m.name}" for m in pkgutil.iter_modules(salesstream.core.__path__)]
    assert modules, "the core package has no modules"
    probe = (
        "import sys, importlib\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'moto'))\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
