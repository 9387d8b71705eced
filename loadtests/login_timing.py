"""How long a wrong password takes for a username that exists and for one that does not.

A difference tells an attacker which usernames exist (issue 8). Starts its own server on a
free loopback port with the production password-hash cost, then times sequential wrong-password
logins for each kind of username (back-off and rate limits off, so every attempt is hashed).

    python loadtests/login_timing.py --attempts 40
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from medreq.simulate.accounts import create_account
from medreq.simulate.server import ServerProcess


def timed_logins(url: str, username: str, attempts: int) -> list[float]:
    times = []
    with httpx.Client(timeout=30) as http:
        for n in range(attempts):
            start = time.perf_counter()
            response = http.post(f"{url}/auth/token", json={"username": username, "password": f"wrong-{n}"})
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 401, response.text
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=40)
    args = parser.parse_args()
    env = {
        "MEDREQ_SCRYPT_N": "16384",  # the production default
        "MEDREQ_RATE_LIMIT_ENABLED": "false",
        "MEDREQ_LOGIN_MAX_FAILURES": "1000000",
    }
    with ServerProcess(env=env) as server:
        create_account(server.url, "patient", username="real-user", password="real-password-1", name="Real")
        timed_logins(server.url, "real-user", 3)  # warm-up
        for label, username in (("existing username", "real-user"), ("unknown username", "nobody-here")):
            times = timed_logins(server.url, username, args.attempts)
            print(
                f"{label:18} median {statistics.median(times):6.1f} ms"
                f"  min {min(times):6.1f}  max {max(times):6.1f}  (n={len(times)})"
            )


if __name__ == "__main__":
    main()
