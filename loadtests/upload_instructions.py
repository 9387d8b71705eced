"""Instructions per step of the prescription path, in process, counted by callgrind.

    python loadtests/upload_instructions.py                                 # this checkout
    python loadtests/upload_instructions.py --build old=/work/old --build new=.
    python loadtests/upload_instructions.py --dir /mnt/jfs                  # where files are stored

What `bench cycle --image` adds to a plain cycle, step by step, without a server: reading the
bench's form (`web/rest/forms.read_form`) with and without its 32 KB PNG (`samples.photo`),
reading it and storing the file (`MediaStore.save`, into ``--dir``), and one signed link
(`MediaStore.url`). Each step runs ``--ops`` times under ``valgrind --tool=callgrind`` in a
process of its own, which collects only inside `functools.reduce` (the measured loop is its one
call), so start-up and imports are not counted; the count divided by ``--ops`` is printed.

The steps' coroutines never wait (the body is one message, the file is written synchronously),
so they are driven without an event loop. Like loadtests/instructions.py this is not time: the
kernel's part of storing a file is not counted at all, and a copy of the image (``rep movsb``)
counts one instruction per byte.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

STEPS = ("form", "form_image", "form_image_save", "url")


def run_step(step: str, ops: int, directory: str) -> None:
    """In the measured process: `ops` times `step`, inside `functools.reduce`."""
    from starlette.requests import Request

    from medreq.media import MediaStore
    from medreq.simulate.bench.common import multipart
    from medreq.simulate.samples import photo
    from medreq.web.rest.forms import form_file, read_form

    fields = {"pharmacy": "7", "quantity": "1", "medicine_name": "Ibuprofen"}
    body, content_type = multipart(fields, photo() if step != "form" else None)
    store = MediaStore(Path(tempfile.mkdtemp(dir=directory)), "secret", base_url="http://127.0.0.1:1", url_ttl=60)
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def once() -> None:
        if step == "url":
            store.url("image", "A" * 22 + ".png", to=123)
            return
        request = Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)
        with await read_form(request, file_limit=10 * 1024 * 1024) as form:
            if step == "form_image_save":
                upload = form_file(form, "image")
                assert upload is not None
                await store.save("image", "image", upload.chunks, limit=10 * 1024 * 1024)

    def loop(n: int) -> None:
        for _ in range(n):
            drive(once())

    loop(20)  # warm: caches, regexes, first-call paths
    functools.reduce(lambda _a, _b: loop(ops), [0], 0)


def drive(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise RuntimeError("a step waited: it needs an event loop")


def count(build: Path, step: str, ops: int, directory: str) -> int:
    with tempfile.TemporaryDirectory(prefix="medreq-callgrind-") as tmp:
        out = Path(tmp) / "cg.out"
        command = [
            "valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=functools_reduce",
            f"--callgrind-out-file={out}", sys.executable, "-P", __file__, "--run", step,
            "--ops", str(ops), "--dir", directory,
        ]  # fmt: skip
        subprocess.run(command, env={**os.environ, "PYTHONPATH": str(build)}, check=True, capture_output=True)
        for line in out.read_text().splitlines():
            if line.startswith("summary:"):
                return round(int(line.split()[1]) / ops)
    raise RuntimeError(f"no summary line from callgrind for {step}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="append", default=[], help="NAME=PATH of a checkout (default: this one)")
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the media store is made")
    parser.add_argument("--run", choices=STEPS, help=argparse.SUPPRESS)  # inside the measured process
    args = parser.parse_args()
    if args.run:
        run_step(args.run, args.ops, args.dir)
        return
    here = Path(__file__).resolve().parent.parent
    builds = [b.split("=", 1) for b in args.build] or [["current", str(here)]]
    results = {
        name: {step: count(Path(path).resolve(), step, args.ops, args.dir) for step in STEPS} for name, path in builds
    }
    print(json.dumps({"ops": args.ops, "instructions_per_op": results}, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")  # the same dict orders, run to run
    main()
