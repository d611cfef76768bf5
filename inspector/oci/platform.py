"""Platform strings (``os/arch[/variant]``) normalised as containerd's ``platforms.Normalize`` does.

BuildKit hands the solver normalised platforms, and image indexes spell them as their builders did
(``linux/arm64/v8``, ``linux/aarch64``): compare only normalised values. One rule, used by cache keys
(the ExecOp's ``OS``/``Arch``) and by platform coverage.
"""

from __future__ import annotations

__all__ = ["normalize_platform", "split_platform"]


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd ``normalizeArch`` (platforms/database.go), case-folded."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def split_platform(text: str) -> tuple[str, str, str]:
    """``(os, arch, variant)`` normalised (``linux/aarch64`` -> ``("linux", "arm64", "")``); no validation."""
    parts = text.split("/")
    os_name = parts[0].lower()
    if os_name == "macos":  # containerd normalizeOS
        os_name = "darwin"
    arch, variant = _normalize_arch(parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else "")
    return os_name, arch, variant


def normalize_platform(text: str) -> str:
    """``os/arch[/variant]`` normalised (``linux/arm64/v8`` -> ``linux/arm64``); no validation."""
    return "/".join(p for p in split_platform(text) if p)
