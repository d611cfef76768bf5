"""The command line: the only layer that imports typer and rich, prints, or reads stdin."""

from inspector.cli.entry import main, run

__all__ = ["main", "run"]
