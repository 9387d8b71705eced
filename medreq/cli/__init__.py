"""The `medreq` command line: one Typer app, commands grouped by concern.

- `server.py`: `serve`, `account` (operator commands: straight to the database)
- `user.py` (+ `user_*.py`): login, register, request, respond, requests, listen … over `medreq.client`
- `inbox.py`: the Textual pharmacy inbox (Textual imported only when it runs)
- `simulate.py`: `simulate` and `bench`
- `db.py`: `db prune`, `db backup`, `db restore` (operator commands on the stored data)
- `samples.py`: `samples`, the files the README uploads

The modules that register commands do without `from __future__ import annotations`: Typer
reads every command's signature at start-up (`--help` too), and string annotations made it
evaluate each one twice per command, 7 % of `medreq --help`'s instructions (issue 14). Names
imported only for type checking are quoted where they are used.
"""

from __future__ import annotations

from . import db as _db  # noqa: F401  (each module registers its commands on `app`)
from . import inbox as _inbox  # noqa: F401
from . import samples as _samples  # noqa: F401
from . import server as _server  # noqa: F401
from . import simulate as _simulate  # noqa: F401
from . import user as _user  # noqa: F401
from . import user_push as _user_push  # noqa: F401
from . import user_webhook as _user_webhook  # noqa: F401
from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
