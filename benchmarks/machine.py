"""The machine a benchmark ran on: its CPU model (``cpu_name``) and one line with cores, torch and OS (``machine``)."""

import os
import platform


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown CPU" where there is none)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine() -> str:
    import torch  # lazy: callers time their own torch import

    return f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {platform.system()}"
