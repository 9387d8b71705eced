"""`medreq simulate` (scenario runs with delivery accounting) and `medreq bench` (the benchmarks).

Exit codes: 0 all delivered exactly once; 1 something lost, duplicated, misrouted or an
operation failed for good; 2 a bad scenario, option or target; 3 the run could not be set up.
"""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .app import app
from .console import console
from .user_session import json_option

err = console(stderr=True)
out = console()


def _fail(label: str, message: object, code: int) -> typer.Exit:
    """Print ``label: message`` on stderr (no wrapping, no markup in the message); the exit."""
    err.print(f"[red]{label}:[/red] {escape(str(message))}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


@app.command()
def simulate(
    scenario_file: Path = typer.Argument(..., help="A scenario TOML file, e.g. scenarios/smoke.toml."),
    embedded: bool = typer.Option(
        False, "--embedded", help="Start a throwaway server (free port, temp data dir, no rate limits)."
    ),
    url: str | None = typer.Option(None, show_default="the scenario's `target`", help="Server to load."),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a target that is not 127.0.0.1 / ::1 (a server you own)."
    ),
    as_json: Annotated[bool, json_option("Print the report as JSON on stdout.")] = False,
    duration: float | None = typer.Option(None, help="Override the scenario's duration (seconds)."),
    seed: int | None = typer.Option(None, help="Override the scenario's random seed."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Live progress on stderr."),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the run's synthetic accounts and their requests on the server."
    ),
) -> None:
    """Simulate patients and pharmacies; check every request and answer arrives exactly once.

    Its accounts are synthetic: real patients never see them, and they are removed with everything
    they made at the end (unless --keep). Rate limits are respected: a 429 waits its Retry-After.

    Example: [bold]medreq simulate scenarios/smoke.toml --embedded[/bold]
    """
    import asyncio

    from rich.live import Live

    from ..simulate import ScenarioError, SetupError, check_target, load_scenario
    from ..simulate.report import LiveView
    from ..simulate.runner import run_embedded, run_scenario

    try:
        scenario = load_scenario(scenario_file)
        overrides = {k: v for k, v in {"duration": duration, "seed": seed}.items() if v is not None}
        if overrides:
            scenario = scenario.model_validate({**scenario.model_dump(), **overrides})
        target = None
        if not embedded:
            target = url or scenario.target
            if not target:
                raise ScenarioError("no target: pass --url URL, --embedded, or set `target` in the scenario")
            target = check_target(target, allow_remote=allow_remote)
    except ValueError as exc:  # ScenarioError, TargetRefused, an override out of bounds
        raise _fail("error", exc, 2) from None

    view = LiveView(scenario)
    show = progress and err.is_terminal

    async def main() -> Any:
        if embedded:
            return await run_embedded(scenario, progress=view.update)
        assert target is not None
        return await run_scenario(scenario, target, progress=view.update, keep=keep)

    try:
        if show:
            with Live(view, console=err, refresh_per_second=4, transient=True):
                report = asyncio.run(main())
        else:
            report = asyncio.run(main())
    except SetupError as exc:
        raise _fail("setup failed", exc, 3) from None
    except RuntimeError as exc:  # the embedded server did not start
        raise _fail("error", exc, 3) from None
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        out.print(report.render())
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def bench(
    which: str = typer.Argument("all", help="notify, cycle, idle, webhook or all."),
    rates: str = typer.Option("50,200,500", help="notify: offered requests/s, comma-separated."),
    seconds: float = typer.Option(10.0, help="notify: seconds per rate; cycle: measured seconds."),
    workers: int = typer.Option(64, help="cycle: closed-loop workers (patient+pharmacy pairs)."),
    processes: int = typer.Option(2, help="cycle/idle: load-generator processes."),
    connections: int = typer.Option(10_000, help="idle: WebSockets to hold."),
    per_account: int = typer.Option(10, help="idle: connections per account."),
    hold: float = typer.Option(25.0, help="idle: seconds to hold them before the probe."),
    compression: str = typer.Option("off,on", help="idle: WebSocket compression settings to try."),
    servers: int = typer.Option(
        1,
        min=1,
        help="idle: `medreq serve` processes, each on its own port (over --postgres and --redis if > 1).",
    ),
    postgres: str | None = typer.Option(
        None, help="idle: PostgreSQL server URL; a database is created on it for the run and dropped after."
    ),
    redis: str | None = typer.Option(None, help="idle: Redis URL the servers share."),
    sources: str | None = typer.Option(
        None,
        show_default="127.0.0.N for generator process N",
        help="idle: source addresses, comma-separated.",
    ),
    server_fd_limit: int | None = typer.Option(
        None, help="idle: descriptor limit of each server (prlimit); a full server answers 503."
    ),
    burst: int = typer.Option(
        0, help="idle: after the probe, this many requests at once, each counted exactly once."
    ),
    ping_interval: float = typer.Option(5.0, help="idle: the servers' WebSocket ping interval (seconds)."),
    webhook: bool = typer.Option(
        False, "--webhook", help="cycle: patients offline, answered through their webhooks instead."
    ),
    image: bool = typer.Option(
        False, "--image", help="cycle: every request carries a 32 KB prescription photo (PNG)."
    ),
    pharmacies: int = typer.Option(
        1,
        min=1,
        max=5,
        help="cycle: also run cycles asking this many pharmacies at once (all accept, the patient chooses) "
        "and compare their server CPU with single-pharmacy cycles.",
    ),
    events: int = typer.Option(5000, help="webhook: events to deliver."),
    as_json: Annotated[bool, json_option("Print the results as JSON on stdout (default: tables).")] = False,
) -> None:
    """Run the benchmarks of docs/benchmarks.md against fresh local server processes.

    Example: [bold]medreq bench notify --rates 50,200,500[/bold]
    """
    from ..simulate import bench as benchmarks

    chosen = benchmarks.BENCHMARKS if which == "all" else (which,)
    if any(name not in benchmarks.BENCHMARKS for name in chosen):
        raise _fail("error", f"unknown benchmark {which!r} (notify, cycle, idle, webhook or all)", 2)
    try:
        rate_list = tuple(float(r) for r in rates.split(","))
        modes = tuple({"on": True, "off": False}[m.strip()] for m in compression.split(","))
    except (ValueError, KeyError):
        raise _fail("error", "--rates is numbers, --compression is on/off, comma-separated", 2) from None
    results: dict[str, Any] = {"environment": benchmarks.environment()}
    for name in chosen:
        err.print(f"[bold]running {name}…[/bold]")
        if name == "notify":
            results[name] = benchmarks.run_notify(rate_list, seconds)
        elif name == "cycle":
            results[name] = benchmarks.run_cycle(
                workers, processes, seconds, webhook=webhook, image=image, pharmacies=pharmacies
            )
        elif name == "webhook":
            results[name] = benchmarks.run_webhook(events, workers // 2 or 1)
        else:
            fleet = benchmarks.IdleFleet(
                servers, postgres, redis, tuple(sources.split(",")) if sources else (), server_fd_limit
            )
            try:
                results[name] = benchmarks.run_idle(
                    connections, per_account, processes, hold, modes, fleet=fleet, burst=burst,
                    ping_interval=ping_interval,
                )  # fmt: skip
            except ValueError as exc:
                raise _fail("error", exc, 2) from None
        if not as_json:
            out.print(bench_table(results[name]))
            if results[name].get("group_vs_single_cpu") is not None:
                out.print(
                    f"server CPU per group cycle ({pharmacies} pharmacies, a choice) = "
                    f"[bold]{results[name]['group_vs_single_cpu']:g}×[/bold] a single-pharmacy cycle's"
                )
    if as_json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    else:
        env = results["environment"]
        out.print(
            f"[dim]Python {env['python']} on {env['platform']}, {env['cpus']} CPUs, load "
            f"{'/'.join(map(str, env['load_average_1_5_15']))}, {env['date']} (--json for all of it)[/dim]"
        )


def bench_table(result: dict[str, Any]) -> Table:
    """One benchmark's runs side by side: a row per measure (nested ones flattened), a column per run."""
    runs = [_flatten(run) for run in result["results"]]
    table = Table(title=f"medreq bench {result['benchmark']}", show_header=len(runs) > 1)
    table.add_column("measure")
    for index in range(len(runs)):
        table.add_column(f"run {index + 1}", justify="right")
    for key in dict.fromkeys(k for run in runs for k in run):
        table.add_row(key, *(_cell(run.get(key)) for run in runs))
    return table


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key} "))
        else:
            flat[prefix + key] = value
    return flat


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return escape(f"{value:g}" if isinstance(value, float) else str(value))
