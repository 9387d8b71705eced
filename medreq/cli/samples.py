"""`medreq samples DIR`: the prescription image and voice reply the README's walk-through uploads."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from .app import app


def sample_files() -> dict[str, Callable[[], bytes]]:
    """The files and what draws them; imported here, not at the top: `medreq.simulate` would cost
    every `medreq --help` its start-up (tests/test_cli_startup.py)."""
    from ..simulate import samples

    return {"prescription.png": samples.prescription, "reply.wav": lambda: samples.wav(1.0)}


@app.command("samples", rich_help_panel="Requests")
def write_samples(
    directory: Annotated[
        Path, typer.Argument(file_okay=False, help="Where to write them (created if missing).")
    ] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Write a sample prescription image (prescription.png) and voice reply (reply.wav) to try uploads.

    Example: [cyan]medreq samples .[/]   then   [cyan]medreq request --pharmacy 2 --quantity 5 --image prescription.png[/]
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name, make in sample_files().items():
        path = directory / name
        if path.exists() and not force:
            typer.echo(f"kept {path} (exists; --force to overwrite)")
            continue
        path.write_bytes(make())
        typer.echo(f"wrote {path}")
