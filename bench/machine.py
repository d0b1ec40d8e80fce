"""The machine a bench ran on, as its reports describe it (CPUs, Python, aiortc)."""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Any


def machine_info() -> dict[str, Any]:
    import aiortc

    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "aiortc": aiortc.__version__,
        "platform": platform.platform(),
    }
