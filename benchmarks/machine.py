"""The machine and the software versions behind a benchmark run."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from common import REPO

PACKAGES = ("leyline-usage", "orjson", "duckdb", "concurrent-log-handler")


def cpu_model() -> str:
    """Return the CPU model name from ``/proc/cpuinfo``, or the platform's guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def filesystem_of(path: Path) -> str:
    """Return the filesystem type of the mount that contains ``path``."""
    target = str(path.resolve())
    best, kind = "", "unknown"
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                mount_point = fields[1].replace("\\040", " ")
                inside = target == mount_point or target.startswith(
                    mount_point.rstrip("/") + "/"
                )
                if inside and len(mount_point) >= len(best):
                    best, kind = mount_point, fields[2]
    except OSError:
        pass
    return kind


def memory_total() -> str:
    """Return the machine's memory from ``/proc/meminfo``, in GiB."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            kib = int(meminfo.readline().split()[1])
    except (OSError, ValueError, IndexError):
        return "unknown"
    return f"{kib / 1024**2:.1f} GiB"


def git_revision() -> str:
    """Return the commit, marked ``+changes in src/`` if src/ differs from it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        changes = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} +changes in src/" if changes else commit


def versions() -> dict[str, str]:
    """Return the versions of Python and the packages the figures depend on."""
    found = {"Python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def describe(scratch: Path) -> dict[str, Any]:
    """Return the machine facts printed at the top of the results."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": memory_total(),
        "kernel": f"{platform.system()} {platform.release()}",
        "temp dir": f"{scratch.parent} ({filesystem_of(scratch)})",
        "load average at start": "unknown" if load is None else f"{load[0]:.2f}",
        "source": git_revision(),
    }
