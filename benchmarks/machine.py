"""One line describing the machine a benchmark ran on (CPU model, cores, torch, OS)."""
import os
import platform


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch  # lazy: callers time their own torch import

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {platform.system()}"
