"""`medreq --help` and the other help screens import only what they show (issue 14).

Each command imports the client, the protocol's models, SQLAlchemy, the server … when it runs;
registering the commands imports none of them. Checked without timing anything: a fresh
interpreter runs the command as the console script does and reports which of the heavy modules
it ended up with. The figures are in docs/benchmarks.md ("CLI start-up and serve readiness").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: what made `medreq --help` take 0.5 s before issue 14, and what else only a command needs
HEAVY = (
    "asyncio",
    "httpx",
    "httpcore",
    "websockets",
    "pydantic",
    "pydantic_core",
    "sqlalchemy",
    "alembic",
    "starlette",
    "uvicorn",
    "textual",
    "jwt",
    "redis",
    "medreq.client",
    "medreq.protocol",
    "medreq.storage",
    "medreq.service",
    "medreq.web",
    "medreq.server",
    "medreq.bootstrap",
    "medreq.storage.backup",
    "medreq.config",
    "medreq.simulate",
    "medreq.tui",
)

RUN = """
import json, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["medreq", *json.loads(sys.argv[1])]
from medreq.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
print("\\nLOADED " + json.dumps({"code": code, "loaded": loaded}))
"""


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    """Run `medreq ARGS` in a fresh interpreter: its exit code, the heavy modules it imported,
    and what it printed."""
    done = subprocess.run(
        [sys.executable, "-P", "-c", RUN, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
        check=False,
    )
    head, _, tail = done.stdout.rpartition("\nLOADED ")
    assert tail, done.stdout + done.stderr
    result = json.loads(tail)
    return result["code"], result["loaded"], head + done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        [],  # no arguments is the help too
        ["requests", "--help"],
        ["serve", "--help"],
        ["account", "--help"],
        ["account", "create", "--help"],
        ["db", "backup", "--help"],
        ["inbox", "--help"],
        ["listen", "--help"],
        ["simulate", "--help"],
        ["webhook", "set", "--help"],
        ["--profile", "shop", "listen", "--help"],
    ],
    ids=lambda args: " ".join(args) or "(none)",
)
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    code, loaded, output = run_cli(*args)
    assert code in (0, 2), output  # 2: Click's exit for help shown because nothing was given
    assert "Usage: medreq" in output, output
    if args == ["serve", "--help"]:  # its options are made from Settings' fields (issue 26)
        loaded = [name for name in loaded if name.split(".")[:2] != ["medreq", "config"]]
    assert loaded == [], f"`medreq {' '.join(args)}` imported {loaded}"


def test_the_check_sees_what_a_command_imports(tmp_path: object) -> None:
    """The same check on a command that runs: it needs the client, and the check says so
    (a check that could never see an import would pass for nothing)."""
    code, loaded, output = run_cli("whoami", "--profile", "nobody", env={"MEDREQ_CONFIG_DIR": str(tmp_path)})
    assert code == 1, output
    assert "not logged in" in output, output
    assert "medreq.client" in loaded and "pydantic" in loaded and "httpx" in loaded, loaded


def test_command_modules_keep_their_annotations_evaluated() -> None:
    """Typer reads every command's signature at start-up, `--help` included; with `from
    __future__ import annotations` it evaluated each annotation string twice per command
    (`inspect.signature(eval_str=True)` and `get_type_hints`): 7 % of `medreq --help`'s
    instructions (docs/benchmarks.md). A module that registers commands keeps real annotations."""
    from pathlib import Path

    cli = Path(__file__).resolve().parent.parent / "medreq" / "cli"
    registering = [
        path.name
        for path in sorted(cli.glob("*.py"))
        if any(mark in path.read_text() for mark in ("@app.command", "_app.command", "@app.callback"))
    ]
    assert "user.py" in registering and "server.py" in registering
    postponed = [name for name in registering if "from __future__ import annotations" in (cli / name).read_text()]
    assert postponed == []
