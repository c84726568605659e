"""Hatch build hook: bundle js/ with esbuild into jupyter_streamchat/static/.

The bundle is built, not committed.  Set STREAMCHAT_SKIP_JS=1 to skip (for a
Python-only build; the widget then has no front end).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

HERE = Path(__file__).parent
JS = HERE / "js"
STATIC = HERE / "jupyter_streamchat" / "static"


def _newest_source() -> float:
    files = [p for p in (JS / "src").rglob("*") if p.is_file()]
    files += [JS / "package.json", JS / "package-lock.json"]
    return max((p.stat().st_mtime for p in files if p.exists()), default=0.0)


class JSBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if os.environ.get("STREAMCHAT_SKIP_JS") == "1" or not (JS / "package.json").exists():
            return
        bundle = STATIC / "widget.js"
        if bundle.exists() and bundle.stat().st_mtime >= _newest_source():
            return
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                "npm is needed to build the widget bundle (js/ -> jupyter_streamchat/static/); "
                "install Node.js >= 18, or set STREAMCHAT_SKIP_JS=1 for a Python-only build"
            )
        if not (JS / "node_modules").exists():
            install = "ci" if (JS / "package-lock.json").exists() else "install"
            subprocess.run([npm, install, "--no-audit", "--no-fund"], cwd=JS, check=True)
        subprocess.run([npm, "run", "build"], cwd=JS, check=True)
