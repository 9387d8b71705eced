"""One account's hanging webhook receiver against another account's webhook latency (issue 25 item 3).

Starts its own server on a free loopback port (default limits: rate limits on, 10 s webhook
timeout, 8 attempts) and two receivers in this process, on loopback: one that reads every POST
and never answers (the attacker's), one that answers 200 at once (the victim's). Then:

- the victim: a patient sends the victim pharmacy `--victim-rate` requests a second for the whole
  run; each one's latency is from sending the request to the victim's receiver having its
  `new_request` (the pharmacy is offline: its webhook is how it learns of it);
- the attack, for `--attack-seconds` after `--before` seconds: each of `--attackers` pharmacies,
  all with webhooks on the hanging receiver, sends ``POST /auth/me/webhook-test`` 20 times a
  second, and two patients of theirs send them `--flood-rate` requests a second between them
  (each one's `new_request` another POST to the hanging receiver), all within the default limits;
- `--after` seconds more of the victim alone.

Prints the victim's latency p50 / p99 / max before, during and after the attack, what the attack
got (202s and 429s), and how many POSTs the hanging receiver was holding at most. Nothing leaves
127.0.0.1. Bounded: about `--before + --attack-seconds + --after` seconds plus start-up.

    python loadtests/webhook_fairness.py                  # 5 + 20 + 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from typing import Any

import httpx

from medreq.simulate.accounts import Account, create_account
from medreq.simulate.bench.webhook import WebhookReceiver
from medreq.simulate.server import ServerProcess

ENV = {
    "MEDREQ_RATE_LIMIT_ENABLED": "true",  # the attack stays within the default limits
    "MEDREQ_WEBHOOK_ALLOW_PRIVATE": "true",  # both receivers are on loopback
}


class HangingReceiver:
    """Reads each POST and never answers; `held` is how many it is holding now, `most` at most."""

    def __init__(self) -> None:
        self.held = self.most = self.seen = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            self.seen += 1
            self.held += 1
            self.most = max(self.most, self.held)
            try:
                await reader.read()  # until the server gives up and closes it
            finally:
                self.held -= 1
        writer.close()

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(0.1)  # each connection's task sees its end


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"n={len(values):4}  p50 {statistics.median(ordered):6.3f} s  p99 {p99:6.3f} s  max {ordered[-1]:6.3f} s"


async def paced(seconds: float, rate: float, action: Any) -> None:
    """`action()` `rate` times a second for `seconds`, each as a task (none waits for another)."""
    tasks = []
    start = time.monotonic()
    for n in range(int(seconds * rate)):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(action()))
    await asyncio.gather(*tasks, return_exceptions=True)


async def run(args: argparse.Namespace, server: ServerProcess) -> None:
    sent: dict[int, float] = {}  # victim's request id -> when its request was sent
    arrived: dict[int, float] = {}
    all_arrived = asyncio.Event()

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == "new_request" and isinstance(event.get("request_id"), int):
            arrived.setdefault(event["request_id"], time.monotonic())
            if sending_done and not set(sent) - set(arrived):
                all_arrived.set()

    sending_done = False

    normal, hanging = WebhookReceiver(on_event), HangingReceiver()
    normal_port, hanging_port = await normal.start(), await hanging.start()
    new = lambda role: create_account(server.url, role)  # noqa: E731
    victim, victim_patient = new("pharmacy"), new("patient")
    attackers = [new("pharmacy") for _ in range(args.attackers)]
    flooders = [new("patient"), new("patient")]
    statuses: dict[str, dict[int, int]] = {"webhook-test": {}, "flood requests": {}, "victim requests": {}}
    phase_of: dict[int, str] = {}
    phase = "before"

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def put_hook(account: Account, url: str) -> None:
            answer = await http.put("/auth/me", json={"webhook_url": url}, headers=account.headers)
            answer.raise_for_status()

        await put_hook(victim, f"http://127.0.0.1:{normal_port}/hook")
        for attacker in attackers:
            await put_hook(attacker, f"http://127.0.0.1:{hanging_port}/hook")

        def count(kind: str, status: int) -> None:
            statuses[kind][status] = statuses[kind].get(status, 0) + 1

        async def victim_request() -> None:
            started = time.monotonic()
            answer = await http.post(
                "/medicine/request/", data={"pharmacy": str(victim.id), "quantity": "1", "medicine_name": "Amoxicillin"},
                headers=victim_patient.headers,
            )  # fmt: skip
            count("victim requests", answer.status_code)
            if answer.status_code == 201:
                request_id = answer.json()["request_id"]
                sent[request_id] = started
                phase_of[request_id] = phase

        async def webhook_test(attacker: Account) -> None:
            answer = await http.post("/auth/me/webhook-test", headers=attacker.headers)
            count("webhook-test", answer.status_code)

        flood_turn = 0

        async def flood_request() -> None:
            nonlocal flood_turn
            flood_turn += 1
            patient = flooders[flood_turn % len(flooders)]
            target = attackers[flood_turn % len(attackers)]
            answer = await http.post(
                "/medicine/request/", data={"pharmacy": str(target.id), "quantity": "1", "medicine_name": "x"},
                headers=patient.headers,
            )  # fmt: skip
            count("flood requests", answer.status_code)

        async def attack() -> None:
            nonlocal phase
            await asyncio.sleep(args.before)
            phase = "during"
            await asyncio.gather(
                *(paced(args.attack_seconds, 20, lambda a=a: webhook_test(a)) for a in attackers),
                paced(args.attack_seconds, args.flood_rate, flood_request),
            )
            phase = "after"

        total = args.before + args.attack_seconds + args.after
        await asyncio.gather(paced(total, args.victim_rate, victim_request), attack())
        sending_done = True
        if not set(sent) - set(arrived):
            all_arrived.set()
        with contextlib.suppress(TimeoutError):  # the last ones' deliveries
            await asyncio.wait_for(all_arrived.wait(), 15)

    for name in ("before", "during", "after"):
        latencies = [arrived[i] - sent[i] for i in sent if phase_of[i] == name and i in arrived]
        print(f"victim's webhook latency, {name:6} the attack: {percentiles(latencies)}")
    lost = len(set(sent) - set(arrived))
    print(f"victim's requests never delivered within 15 s of the end: {lost}")
    for kind, by_status in statuses.items():
        print(f"{kind}: " + ", ".join(f"{n}x {status}" for status, n in sorted(by_status.items())))
    print(f"hanging receiver: {hanging.seen} POSTs received, at most {hanging.most} held at once")
    print(json.dumps({"victim_lost": lost, "hanging_most_held": hanging.most}))
    normal.close()
    await hanging.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=1, help="pharmacies with a hanging webhook")
    parser.add_argument("--attack-seconds", type=float, default=20.0)
    parser.add_argument("--flood-rate", type=float, default=20.0, help="requests/s to the attackers")
    parser.add_argument("--victim-rate", type=float, default=5.0, help="requests/s to the victim")
    parser.add_argument("--before", type=float, default=5.0)
    parser.add_argument("--after", type=float, default=10.0)
    args = parser.parse_args()
    with ServerProcess(env=ENV) as server:
        asyncio.run(run(args, server))


if __name__ == "__main__":
    main()
