"""Placeholder CLI entry point (replaced below)."""


def main() -> None:
    """Run the CLI."""
