"""`medreq inbox`: the pharmacy's live inbox in the terminal (Textual, the ``tui`` extra)."""

import typer
from rich.markup import escape

from .app import app
from .user_output import err
from .user_session import ProfileOption

INSTALL_HINT = "the inbox needs Textual: pip install 'medreq[tui]'"


@app.command("inbox")
def inbox(profile: ProfileOption = "default") -> None:
    """Pharmacy inbox: new requests live, the prescription, accept/reject in two keys."""
    try:
        import textual  # noqa: F401
    except ImportError:
        err.print(f"[red]error:[/] {escape(INSTALL_HINT)}")
        raise typer.Exit(1) from None
    from medreq.client import ProfileStore

    stored = ProfileStore().load(profile)
    if stored is not None and stored.access and stored.role == "patient":
        err.print(
            f"[red]error:[/] profile {profile!r} is the patient account {stored.username!r}; "
            "the inbox is for pharmacy accounts. Log in as a pharmacy: "
            f"`medreq login --profile {profile}` (or use another --profile)."
        )
        raise typer.Exit(1)
    from medreq.tui import run_inbox

    run_inbox(profile)
