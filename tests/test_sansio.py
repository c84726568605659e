"""The decoders and dialects are sans-I/O: importing them pulls in no I/O framework."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import jupyter_streamchat
import jupyter_streamchat.decode
import jupyter_streamchat.dialects

FORBIDDEN = ("asyncio", "httpx", "tornado", "grpc", "websockets")

MODULES = sorted(
    name
    for package in (jupyter_streamchat.decode, jupyter_streamchat.dialects)
    for name in [
        package.__name__,
        *(f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)),
    ]
)

# Stands in for the top-level package, whose __init__ re-exports the I/O-bound API:
# what is measured is the decode/dialects modules and everything *they* import.
BARE_PARENT = """
import sys, types
package = types.ModuleType("jupyter_streamchat")
package.__path__ = [{path!r}]
sys.modules["jupyter_streamchat"] = package
"""

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
forbidden = {forbidden!r}
print(json.dumps(sorted(
    name for name in sys.modules
    if any(name == f or name.startswith(f + ".") for f in forbidden)
)))
"""


def probe(module: str, *, bare_parent: bool) -> list[str]:
    """The forbidden modules that importing ``module`` in a fresh interpreter loads."""
    code = PROBE.format(forbidden=FORBIDDEN)
    if bare_parent:
        code = BARE_PARENT.format(path=str(Path(jupyter_streamchat.__file__).parent)) + code
    result = subprocess.run(
        [sys.executable, "-c", code, module],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_every_module_is_probed() -> None:
    assert "jupyter_streamchat.decode.sse" in MODULES
    assert "jupyter_streamchat.decode.stream" in MODULES
    assert "jupyter_streamchat.dialects.openai_chat" in MODULES
    assert "jupyter_streamchat.dialects.base" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_imports_no_io_framework(module: str) -> None:
    # A fresh interpreter per module: nothing the test run imported can hide an
    # import, and each module is imported first once (so no import cycle hides).
    assert probe(module, bare_parent=True) == []


def test_package_import_is_sans_io() -> None:
    assert probe("jupyter_streamchat.decode", bare_parent=False) == []
