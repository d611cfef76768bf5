"""The package's public surface: every name in __all__ resolves, lazily, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import inspector


def test_every_exported_name_resolves() -> None:
    for name in inspector.__all__:
        assert getattr(inspector, name) is not None, name


def test_importing_the_package_does_not_import_http_or_cli_libraries() -> None:
    code = "import sys, inspector; print(sorted(m for m in ('httpx', 'rich', 'typer') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_library_modules_never_import_the_cli_libraries() -> None:
    cli_side = {"cli", "commands", "render", "__main__"}
    from pathlib import Path

    package = Path(inspector.__file__).parent
    for path in package.glob("*.py"):
        stem = path.stem
        if stem in cli_side or stem.startswith(("commands_", "render_")):
            continue
        text = path.read_text()
        for lib in ("typer", "rich"):
            assert f"import {lib}" not in text and f"from {lib}" not in text, f"{path.name} imports {lib}"


def test_commands_without_human_output_never_import_rich() -> None:
    # rich costs ~30 ms of start-up; `tags`, `--version` and every --json run do without it.
    code = (
        "import sys\n"
        "from inspector.cli.entry import run\n"
        "run(['--version']); run(['tags', '--help'])\n"
        "print('rich' in sys.modules, 'inspector.cli.commands' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False True"
