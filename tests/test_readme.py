"""README.md runs verbatim: its walk-through, CLI and Python blocks, in order, on a fresh server.

The blocks are read from README.md itself. A block runs in the folder where `medreq serve` runs
(so `./medreq-data` is the server's), with HOME and MEDREQ_CONFIG_DIR in a temp dir; the only
change made to its text is the port (``:8000`` → the server's free port). Shell variables a block
sets (``PATIENT=…``) reach the later blocks, as in one terminal.

Blocks the README tells the reader to run in another terminal (a socket client, `listen`, a
`--wait`, the Python example) carry a marker comment just above them, invisible on GitHub:

    <!-- readme-test: background; wait "Connected"; expect "new_request" -->

``background`` starts the block and goes on; ``wait`` holds the next block until the text has
appeared in its output; ``expect`` must have appeared by the end. Any other block must exit 0
and print no error body.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import ServerProcess

pytestmark = pytest.mark.timeout(240)

README = Path(__file__).resolve().parent.parent / "README.md"
TESTED_SECTIONS = (
    "A five-minute walk-through",
    "From a terminal: the CLI",
    "From Python",
    "Accounts and access",
)
BLOCK = re.compile(
    r"(?:<!--\s*readme-test:(?P<marker>[^>]*)-->\s*\n)?```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)
STEP_SECONDS = 60
WAIT_SECONDS = 30


@dataclass
class Block:
    section: str
    lang: str
    code: str
    background: bool = False
    wait: list[str] = field(default_factory=list)
    expect: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.section!r}: {self.code.strip().splitlines()[0][:70]}"


def readme_blocks(text: str) -> list[Block]:
    """Every sh and python block of the tested sections, in order, with its marker."""
    blocks: list[Block] = []
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        if not title.startswith(TESTED_SECTIONS):
            continue
        for match in BLOCK.finditer(section):
            if match["lang"] not in ("sh", "python"):
                continue
            block = Block(title, match["lang"], match["code"])
            for part in (match["marker"] or "").split(";"):
                words = shlex.split(part)
                if words == ["background"]:
                    block.background = True
                elif len(words) == 2 and words[0] in ("wait", "expect"):
                    getattr(block, words[0]).append(words[1])
                    if words[0] == "wait":
                        block.expect.append(words[1])
                elif words:
                    raise AssertionError(f"unknown readme-test marker {part!r} in {title!r}")
            blocks.append(block)
    return blocks


def test_readme_has_the_blocks_it_promises() -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    sections = {block.section.split(":")[0] for block in blocks}
    assert {"A five-minute walk-through", "From a terminal", "From Python", "Accounts and access"} <= sections
    assert any(block.lang == "python" for block in blocks)


class Runner:
    def __init__(self, work: Path, env: dict[str, str], port: int) -> None:
        self.work, self.env, self.port = work, env, port
        self.state = work.parent / "shell-state.sh"
        self.state.write_text("")
        self.background: list[tuple[Block, subprocess.Popen[bytes], Path]] = []

    def text(self, block: Block) -> str:
        return re.sub(r"(?<=:)8000\b", str(self.port), block.code)

    def command(self, block: Block, index: int) -> list[str]:
        if block.lang == "python":
            script = self.work.parent / f"readme-example-{index}.py"
            script.write_text(self.text(block))
            return [sys.executable, str(script)]
        # set -a: variables a block assigns are exported, saved, and sourced by the next block
        save = "" if block.background else f'\nexport -p > "{self.state}"'
        script = f'set -a -eo pipefail\nsource "{self.state}"\n{self.text(block)}{save}\n'
        return ["bash", "-c", script]

    def run(self, block: Block, index: int) -> None:
        if block.background:
            log = self.work.parent / f"background-{index}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    self.command(block, index), cwd=self.work, env=self.env,
                    stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            self.background.append((block, proc, log))
            for text in block.wait:
                self.wait_for(block, proc, log, text)
            return
        done = subprocess.run(
            self.command(block, index), cwd=self.work, env=self.env, capture_output=True, timeout=STEP_SECONDS
        )
        output = (done.stdout + done.stderr).decode(errors="replace")
        assert done.returncode == 0, f"{block.title} exited {done.returncode}:\n{output}"
        assert '{"error":' not in output, f"{block.title} printed an error:\n{output}"
        assert "Traceback" not in output, f"{block.title}:\n{output}"

    def wait_for(self, block: Block, proc: subprocess.Popen[bytes], log: Path, text: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while text not in log.read_text(errors="replace"):
            assert proc.poll() is None or text in log.read_text(errors="replace"), (
                f"{block.title} exited {proc.returncode} before printing {text!r}:\n{log.read_text()}"
            )
            assert time.monotonic() < deadline, f"{block.title} did not print {text!r}:\n{log.read_text()}"
            time.sleep(0.1)

    def finish(self) -> None:
        """Each background block printed what it should, then stop the ones still running."""
        try:
            for block, proc, log in self.background:
                for text in block.expect:
                    self.wait_for(block, proc, log, text)
                if proc.poll() is not None:
                    assert proc.returncode == 0, f"{block.title} exited {proc.returncode}:\n{log.read_text()}"
                assert "Traceback" not in log.read_text(errors="replace"), (
                    f"{block.title}:\n{log.read_text()}"
                )
        finally:
            for _, proc, _ in self.background:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait(5)
                if proc.stdin is not None:
                    proc.stdin.close()


def test_readme_runs_verbatim(tmp_path: Path) -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDREQ_")}
    env |= {
        "HOME": str(home),
        "MEDREQ_CONFIG_DIR": str(home / "config"),
        "MEDREQ_SCRYPT_N": "1024",  # fast hashes for the server and `account create` alike
        # this interpreter's `python` and `medreq` first, as in an activated virtualenv
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), sysconfig.get_path("scripts"), env.get("PATH", "")]
        ),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "100",
    }
    # `medreq serve` in the folder the blocks run in, its data in ./medreq-data as by default
    server = ServerProcess(work / "medreq-data", env={"MEDREQ_SCRYPT_N": "1024"})
    server.start()
    runner = Runner(work, env, server.port)
    try:
        for index, block in enumerate(blocks):
            runner.run(block, index)
        runner.finish()
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()
