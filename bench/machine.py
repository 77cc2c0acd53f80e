"""What a benchmark's numbers depend on: the CPU model, its vector and matrix extensions, the load."""

import os
import platform

RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_description():
    """One line: CPU model, which of :data:`RELEVANT_FLAGS` it has, core count and load average."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    present = [flag for flag in RELEVANT_FLAGS if flag in flags] or ["flags unknown"]
    return f"CPU: {model}; {' '.join(present)}; {os.cpu_count()} logical CPU(s); load average {os.getloadavg()[0]:.2f}"
