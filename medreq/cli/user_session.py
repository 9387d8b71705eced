"""Running a user command: the profile's client, token persistence, errors as one line.

`medreq.client` (httpx, websockets, the pydantic models: 0.17 s of `python -X importtime`) is
imported by the functions that run a command, never at module level: registering the commands
for `medreq --help` must not pay for it (issue 14, docs/benchmarks.md).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from .user_output import CommandError, fail

if TYPE_CHECKING:
    from medreq.client import MedreqClient, Profile

_T = TypeVar("_T")
_V = TypeVar("_V")


def root_fallback(ctx: typer.Context, param: typer.CallbackParam, value: _V) -> _V:
    """The option's value, or the root's (``medreq --profile shop listen``) unless it was given
    after the command: after the command > before it > environment > default."""
    name = param.name or ""
    source = ctx.get_parameter_source(name)
    if source is not None and source.name == "COMMANDLINE":  # Typer's own vendored Click enum
        return value
    given: _V | None = ctx.find_root().params.get(name)
    return value if given is None or given is False else given


ProfileOption = Annotated[
    str,
    typer.Option(
        "--profile",
        "-P",
        envvar="MEDREQ_PROFILE",
        callback=root_fallback,
        help="Saved login to use, so one terminal can be a patient and another a pharmacy.",
    ),
]


def json_option(help: str = "Print JSON for scripts instead of a table.") -> Any:
    """``--json``, also accepted before the command."""
    return typer.Option("--json", callback=root_fallback, help=help)


JsonOption = Annotated[bool, json_option()]


def run(main: Callable[[], Awaitable[_T]]) -> _T:
    """Run an async command body; expected failures become one line on stderr and exit 1."""
    if os.environ.get("MEDREQ_DEBUG"):
        import logging

        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("medreq.client").setLevel(logging.DEBUG)
    import asyncio

    from medreq.client import MedreqError

    try:
        return asyncio.run(_call(main))
    except (MedreqError, CommandError) as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _call(main: Callable[[], Awaitable[_T]]) -> _T:
    return await main()


def load_profile(name: str) -> Profile:
    from medreq.client import ProfileStore, Unauthorized

    profile = ProfileStore().load(name)
    if profile is None or not profile.access:
        raise Unauthorized(f"not logged in (profile {name!r}): run `medreq login --profile {name}`")
    return profile


@asynccontextmanager
async def session(name: str) -> AsyncIterator[tuple[MedreqClient, Profile]]:
    """The logged-in client of profile ``name``; refreshed tokens are saved back to it."""
    from medreq.client import AccountOut, MedreqClient, ProfileStore

    store = ProfileStore()
    profile = load_profile(name)

    def save_tokens(access: str, refresh: str | None) -> None:
        profile.access, profile.refresh = access, refresh
        store.update(name, access=access, refresh=refresh)

    def stored_tokens() -> tuple[str | None, str | None]:
        # another command of this profile may have refreshed (and so used up) our refresh token
        saved = store.load(name)
        return (saved.access, saved.refresh) if saved is not None and saved.url == profile.url else (None, None)

    async with MedreqClient(
        profile.url,
        token=profile.access,
        refresh_token=profile.refresh,
        on_tokens=save_tokens,
        stored_tokens=stored_tokens,
    ) as client:
        if profile.account_id is not None and profile.role in ("patient", "pharmacy"):
            client.account = AccountOut(
                id=profile.account_id,
                username=profile.username,
                role=profile.role,  # type: ignore[arg-type]
                name=profile.account_name or profile.username,
            )
        yield client, profile
