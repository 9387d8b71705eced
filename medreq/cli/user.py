"""User commands over `medreq.client`: log in, send and answer requests, listen live.

Each command is a thin shell: parse options, call the client inside `run` (which turns
expected failures into one line on stderr and exit code 1), print with `user_output`.
The client, and the modules built on it (`user_live`, `user_upload`), are imported inside the
commands: `medreq --help` registers every command without them (issue 14).
"""

import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from .app import app
from .user_output import created_text, echo_json, out, pharmacies_table, requests_table, status_text
from .user_session import JsonOption, ProfileOption, json_option, load_profile, run, session

if TYPE_CHECKING:
    from medreq.client import MedreqClient

DEFAULT_URL = "http://127.0.0.1:8000"
UrlOption = Annotated[str, typer.Option("--url", envvar="MEDREQ_URL", help="Server base URL.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
]


class Role(StrEnum):
    patient = "patient"
    pharmacy = "pharmacy"


class StatusFilter(StrEnum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


def _password(from_stdin: bool, confirm: bool = False) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise typer.BadParameter("no password on stdin", param_hint="--password-stdin")
        return password
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


# --- accounts ----------------------------------------------------------------------------------


async def _login(url: str, username: str, password: str, profile: str) -> None:
    """Log in and save the profile (keeping its last event id if it is the same account)."""
    from medreq.client import MedreqClient, ProfileStore

    url = url.rstrip("/")
    async with MedreqClient(url) as client:
        tokens = await client.login(username, password)
    ProfileStore().save_login(profile, url, tokens)
    account = tokens.account
    out.print(
        f"Logged in as [bold]{account.username}[/] ({account.role} #{account.id}) at {url} "
        f"[dim]\\[profile {profile}][/]"
    )


@app.command(rich_help_panel="Account")
def login(
    username: Annotated[str, typer.Option("--username", "-u", prompt=True, help="Account name.")],
    url: UrlOption = DEFAULT_URL,
    password_stdin: PasswordStdin = False,
    profile: ProfileOption = "default",
) -> None:
    """Log in and save the URL and tokens in a profile (file mode 0600).

    Example: [cyan]medreq login --url http://127.0.0.1:8000 --username alice --profile patient[/]
    """
    password = _password(password_stdin)

    run(lambda: _login(url, username, password, profile))


@app.command(rich_help_panel="Account")
def register(
    username: Annotated[str, typer.Option("--username", "-u", prompt=True, help="3-64 of [A-Za-z0-9_.-].")],
    role: Annotated[Role, typer.Option("--role", prompt=True, help="patient or pharmacy.")],
    name: Annotated[str, typer.Option("--name", prompt=True, help="Display name.")],
    phone: Annotated[str | None, typer.Option("--phone", help="Phone number (optional).")] = None,
    url: UrlOption = DEFAULT_URL,
    password_stdin: PasswordStdin = False,
    login_after: Annotated[bool, typer.Option("--login", help="Also log in into --profile.")] = False,
    profile: ProfileOption = "default",
) -> None:
    """Create an account.

    Example: [cyan]medreq register --url http://127.0.0.1:8000 --username city-pharmacy --role pharmacy --name "City Pharmacy"[/]
    """
    password = _password(password_stdin, confirm=not password_stdin)

    async def main() -> None:
        from medreq.client import MedreqClient

        async with MedreqClient(url) as client:
            account = await client.register(username, password, role.value, name, phone)
        out.print(f"Registered [bold]{account.username}[/] ({account.role} #{account.id})")
        if login_after:
            await _login(url, username, password, profile)

    run(main)


@app.command(rich_help_panel="Account")
def logout(profile: ProfileOption = "default") -> None:
    """Forget the tokens of a profile.

    Example: [cyan]medreq logout --profile pharmacy[/]
    """
    from medreq.client import ProfileStore

    if ProfileStore().delete(profile):
        out.print(f"Logged out [dim]\\[profile {profile}][/]")
    else:
        out.print(f"Not logged in [dim]\\[profile {profile}][/]")


@app.command(rich_help_panel="Account")
def whoami(profile: ProfileOption = "default", as_json: JsonOption = False) -> None:
    """Show the account of a profile, as the server sees it.

    Example: [cyan]medreq whoami --profile patient[/]
    """

    async def main() -> None:
        async with session(profile) as (client, saved):
            account = await client.me()
        if as_json:
            echo_json(account.model_dump() | {"url": saved.url, "profile": profile})
            return
        out.print(
            f"[bold]{account.username}[/] ({account.role} #{account.id}, {account.name}) at {saved.url} "
            f"[dim]\\[profile {profile}][/]"
        )

    run(main)


# --- requests ----------------------------------------------------------------------------------


@app.command(rich_help_panel="Requests")
def pharmacies(profile: ProfileOption = "default", as_json: JsonOption = False) -> None:
    """List the pharmacies a patient can send requests to.

    Example: [cyan]medreq pharmacies[/]
    """

    async def main() -> None:
        async with session(profile) as (client, _):
            found = await client.pharmacies()
        if as_json:
            echo_json([p.model_dump() for p in found])
        else:
            out.print(pharmacies_table(found))

    run(main)


@app.command(rich_help_panel="Requests")
def request(
    pharmacy: Annotated[
        list[int],
        typer.Option(
            "--pharmacy",
            help="Pharmacy id (see `medreq pharmacies`); repeat it to ask several at once, then `medreq choose`.",
        ),
    ],
    quantity: Annotated[int, typer.Option("--quantity", "-q", help="1-1000.")],
    image: Annotated[
        Path | None,
        typer.Option(
            "--image", exists=True, dir_okay=False, readable=True, help="Prescription: JPEG/PNG/WebP/PDF."
        ),
    ] = None,
    medicine: Annotated[str | None, typer.Option("--medicine", help="Medicine name.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Note for the pharmacy.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Retry-safe key: a repeat creates nothing new.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Stay connected and print the pharmacy's answer.")
    ] = False,
    save_audio: Annotated[
        Path | None,
        typer.Option("--save-audio", file_okay=False, help="With --wait: save the audio reply here."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="With --wait: give up after S seconds.")
    ] = None,
    profile: ProfileOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Send a medicine request (as a patient); prints the request id. Asked of several pharmacies,
    prints the group and each pharmacy's request id; choose one answer with `medreq choose`.

    Example: [cyan]medreq request --pharmacy 2 --quantity 5 --image rx.jpg --medicine "Amoxicillin 500mg" --wait[/]
    ·   [cyan]medreq request --pharmacy 2 --pharmacy 3 --pharmacy 4 -q 1 --medicine Salbutamol[/]
    """
    if image is None and not medicine:
        raise typer.BadParameter("give --image or --medicine (or both)", param_hint="--image")

    async def main() -> None:
        from .user_live import wait_for_answer

        if save_audio is not None:
            save_audio.mkdir(parents=True, exist_ok=True)
        async with session(profile) as (client, _):
            send = _sender(client, pharmacy, quantity, image, medicine, note, idempotency_key, as_json)
            if wait:
                await wait_for_answer(client, send, save_audio, timeout, as_json)
            else:
                await send()

    run(main)


def _sender(
    client: "MedreqClient",
    pharmacy: list[int],
    quantity: int,
    image: Path | None,
    medicine: str | None,
    note: str | None,
    idempotency_key: str | None,
    as_json: bool,
) -> Callable[[], Awaitable[list[int]]]:
    from .user_upload import upload_progress

    async def send() -> list[int]:
        with upload_progress(image) as progress:
            created = await client.create_request(
                pharmacy,
                quantity,
                image,
                medicine_name=medicine,
                note=note,
                idempotency_key=idempotency_key,
                progress=progress,
            )
        if as_json:
            echo_json(created.model_dump())
        else:
            out.print(created_text(created), soft_wrap=True)
        return [r.id for r in created.requests] or [created.request_id]

    return send


@app.command(rich_help_panel="Requests")
def choose(
    request_id: Annotated[int, typer.Argument(help="The accepted request to take (see `medreq requests --group`).")],
    profile: ProfileOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Choose one accepted answer of a request sent to several pharmacies (as the patient): the
    other pharmacies' open requests of its group are cancelled, and they are told so.

    Example: [cyan]medreq choose 124[/]
    """

    async def main() -> None:
        async with session(profile) as (client, _):
            chosen = await client.choose(request_id)
        if as_json:
            echo_json(chosen.model_dump())
        else:
            out.print(
                f"Chose request [bold]{chosen.id}[/] at {escape(chosen.pharmacy.name)} "
                f"({status_text(chosen.status)}); the group's other open requests are cancelled",
                soft_wrap=True,
            )

    run(main)


@app.command(rich_help_panel="Requests")
def respond(
    request_id: Annotated[int, typer.Argument(help="Request id.")],
    accept: Annotated[bool, typer.Option("--accept", help="Accept the request.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject the request.")] = False,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Text for the patient.")] = None,
    audio: Annotated[
        Path | None,
        typer.Option(
            "--audio", exists=True, dir_okay=False, readable=True, help="Voice reply: WebM/Ogg/MP3/M4A/WAV."
        ),
    ] = None,
    price: Annotated[str | None, typer.Option("--price", help="Your offer's price, e.g. 12.50.")] = None,
    currency: Annotated[
        str | None, typer.Option("--currency", help="ISO 4217 code, e.g. EUR (default: the server's).")
    ] = None,
    ready_at: Annotated[
        str | None,
        typer.Option("--ready-at", help="When it can be picked up: ISO 8601 with offset, e.g. 2026-03-01T17:00+01:00."),
    ] = None,
    profile: ProfileOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Answer a pending request (as its pharmacy), with an offer if you like (price, pick-up time).

    Example: [cyan]medreq respond 123 --accept --message "Ready after 5 pm" --audio reply.webm[/]
    ·   [cyan]medreq respond 124 --accept --price 12.50 --currency EUR --ready-at 2026-03-01T17:00+01:00[/]
    """
    if accept == reject:
        raise typer.BadParameter("give exactly one of --accept or --reject", param_hint="--accept/--reject")
    status: Literal["ACCEPTED", "REJECTED"] = "ACCEPTED" if accept else "REJECTED"

    async def main() -> None:
        from .user_upload import upload_progress

        async with session(profile) as (client, _):
            with upload_progress(audio) as progress:
                sent = await client.respond(
                    request_id,
                    status,
                    message,
                    audio=audio,
                    progress=progress,
                    price=price,
                    currency=currency,
                    ready_at=ready_at,
                )
        if as_json:
            echo_json(sent.model_dump())
        else:
            out.print(f"Request [bold]{sent.data.id}[/] {status_text(sent.data.status)}: response sent")

    run(main)


@app.command("requests", rich_help_panel="Requests")
def list_requests(
    status: Annotated[StatusFilter | None, typer.Option("--status", help="Only this status.")] = None,
    group: Annotated[
        int | None,
        typer.Option("--group", "-g", min=1, help="Only the requests of this group (one ask of several)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most N requests (follows pages).")
    ] = 20,
    profile: ProfileOption = "default",
    as_json: JsonOption = False,
) -> None:
    """List your requests, newest first (a patient's own, or those sent to a pharmacy).

    Example: [cyan]medreq requests --status PENDING --limit 50[/]   ·   [cyan]medreq requests --json | jq .[/]
    ·   [cyan]medreq requests --group 7[/] (every pharmacy's answer to one ask, to choose from)
    """

    async def main() -> None:
        async with session(profile) as (client, saved):
            wanted = status.value if status else None
            found = [r async for r in client.iter_requests(wanted, limit=limit, group=group)]
        if as_json:
            echo_json([r.model_dump() for r in found])
        else:
            out.print(requests_table(found, saved.role))

    run(main)


# --- live --------------------------------------------------------------------------------------


@app.command(rich_help_panel="Live")
def listen(
    as_json: Annotated[bool, json_option("Print each event as a raw JSON line.")] = False,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Stop after N events.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Stop after S seconds.")] = None,
    after: Annotated[
        int | None,
        typer.Option("--after", min=0, help="Replay events after this id (0: all); default: resume."),
    ] = None,
    no_retry: Annotated[
        bool,
        typer.Option(
            "--no-retry", help="Fail at once if the server cannot be reached at the start (default: wait for it)."
        ),
    ] = False,
    profile: ProfileOption = "default",
) -> None:
    """Print your events live; waits for the server while it cannot be reached, reconnects by itself
    and resumes where it (or the last run) stopped. Ctrl-C stops it.

    Example: [cyan]medreq listen --profile pharmacy[/]   ·   [cyan]medreq listen --json --count 3 --timeout 30[/]
    """
    from .user_live import listen_events

    saved = load_profile(profile) if after is None else None
    start = after if after is not None else (saved.last_event_id if saved else None)
    run(
        lambda: listen_events(
            profile, start, as_json=as_json, count=count, seconds=timeout, retry=not no_retry
        )
    )
