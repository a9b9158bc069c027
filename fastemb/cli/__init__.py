"""The `fastemb` command line (click)."""
from fastemb.cli.main import entry_point, main  # noqa: F401
