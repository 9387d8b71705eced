"""The webhook outbox's cost on the hot path: request → answer cycles through the service on
SQLite, with every patient offline-with-a-webhook vs without, interleaved in one run.

    python loadtests/outbox_cost.py --cycles 2000 --rounds 5

Each cycle is create_request + respond (what `bench cycle` drives over HTTP, without the HTTP).
With webhooks, each answer also writes one outbox row (the pharmacy_response for the offline
patient) in the same transaction. Nothing is delivered: the deliverer is not running.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from medreq.bootstrap import open_service
from medreq.config import Settings
from medreq.protocol import RegisterIn, RequestForm
from medreq.service import Caller, MedreqService


async def run(cycles: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(env={}, data_dir=Path(tmp), scrypt_n=1024, webhook_allow_private=True)
        async with open_service(settings) as service:
            results = await measure(service, cycles, rounds)
    base = statistics.median(results["no webhook"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:>10}: {median:8.0f} cycles/s (median of {rounds} × {cycles}; {median / base - 1:+.1%})")


async def measure(service: MedreqService, cycles: int, rounds: int) -> dict[str, list[float]]:
    async def account(role: str, name: str) -> Caller:
        row = await service.register(
            RegisterIn(username=name, password="password1", role=role, name=name), by_operator=True
        )
        # signed in just now: setting a webhook needs a sign-in of the last 10 minutes
        return Caller(row.id, role, name, auth_time=int(time.time()))

    pharmacy = await account("pharmacy", "pha")
    plain = await account("patient", "plain")
    hooked = await account("patient", "hooked")
    await service.set_webhook(hooked, "http://127.0.0.1:9/hook")
    form = RequestForm(pharmacy=pharmacy.id, quantity=1, medicine_name="A")

    async def cycles_per_second(patient: Caller) -> float:
        start = time.perf_counter()
        for _ in range(cycles):
            body, _ = await service.create_request(patient, form)
            await service.respond(pharmacy, body.request_id, "ACCEPTED", "ok")
        return cycles / (time.perf_counter() - start)

    results: dict[str, list[float]] = {"no webhook": [], "webhook": []}
    for _ in range(rounds):  # interleaved, so drift on a shared machine hits both alike
        results["no webhook"].append(await cycles_per_second(plain))
        results["webhook"].append(await cycles_per_second(hooked))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.cycles, args.rounds))


if __name__ == "__main__":
    main()
