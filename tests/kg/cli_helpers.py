"""Running ``kgrec`` as a user would: a subprocess, with no ``NEO4J_*`` variables inherited."""

from __future__ import annotations

import os
import subprocess
import sys


def kgrec(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kg ARGS`` (the ``kgrec`` script's entry point) and return the completed
    process (never raises on exit)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kg", *args], capture_output=True, text=True, env=full_env,
        check=False, timeout=600,
    )  # fmt: skip
