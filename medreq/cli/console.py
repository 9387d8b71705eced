"""The rich consoles every command prints through."""

from __future__ import annotations

from rich.console import Console


def console(*, stderr: bool = False) -> Console:
    """A rich console; when not a terminal (piped, redirected) lines are never wrapped and tables
    take the width they need, instead of rich's 80-column default."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=100_000)
