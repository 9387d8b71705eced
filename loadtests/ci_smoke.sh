#!/usr/bin/env bash
# CI load smoke test: a real server on a free port, Locust headless for a bounded time,
# then thresholds on Locust's CSV statistics.
#
#   loadtests/ci_smoke.sh                      # defaults below
#   USERS=30 RUN_TIME=30s P95_MS=150 loadtests/ci_smoke.sh
#
# Fails when any request failed (failure ratio > 0), when no "new_request delivery" was
# recorded, or when the p95 of "WS new_request delivery" exceeds P95_MS. The default of
# 150 ms is set from measurements on a 2-core machine (docs/benchmarks.md, "CI smoke"):
# p95 was 17 and 28 ms on a quiet machine and 91 ms while another load test shared the
# cores; 150 ms leaves room for a noisy CI neighbour yet still catches a server that stops
# pushing promptly (a delivery stuck behind a blocked event loop takes seconds, not ms).
set -euo pipefail

USERS="${USERS:-20}"
SPAWN_RATE="${SPAWN_RATE:-10}"
RUN_TIME="${RUN_TIME:-20s}"
P95_MS="${P95_MS:-150}"
PYTHON="${PYTHON:-python}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d -t medreq-ci-smoke.XXXXXX)"
SERVER_PID=""

cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -INT "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
HOST="http://127.0.0.1:$PORT"

cd "$ROOT"
MEDREQ_RATE_LIMIT_ENABLED=false MEDREQ_MAX_CONNECTIONS_PER_CLIENT=0 MEDREQ_SCRYPT_N=1024 MEDREQ_LOG_LEVEL=warning MEDREQ_PHARMACY_REGISTRATION=open \
    "$PYTHON" -m medreq serve --host 127.0.0.1 --port "$PORT" --data-dir "$WORK/data" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 200); do
    if "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=0.5)" \
        "$HOST/health" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "ci_smoke: the server exited early:" >&2
        tail -n 50 "$WORK/server.log" >&2
        exit 1
    fi
    sleep 0.1
done

echo "ci_smoke: server on $HOST, locust -u $USERS -r $SPAWN_RATE for $RUN_TIME"
timeout 120 "$PYTHON" -m locust -f loadtests/locustfile.py --host "$HOST" --headless \
    -u "$USERS" -r "$SPAWN_RATE" --run-time "$RUN_TIME" --stop-timeout 5 \
    --csv "$WORK/locust" --only-summary --exit-code-on-error 1 --loglevel WARNING

"$PYTHON" - "$WORK/locust_stats.csv" "$P95_MS" <<'PY'
import csv
import sys

path, limit = sys.argv[1], float(sys.argv[2])
rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(open(path, newline=""))}
total = rows[("", "Aggregated")]
requests, failures = int(total["Request Count"]), int(total["Failure Count"])
delivery = rows.get(("WS", "new_request delivery"))
problems = []
if requests == 0 or failures > 0:
    problems.append(f"failure ratio {failures}/{requests} (must be 0 of > 0)")
if delivery is None or int(delivery["Request Count"]) == 0:
    problems.append("no WS new_request delivery was recorded")
else:
    p95 = float(delivery["95%"])
    print(f"ci_smoke: {requests} requests, 0 failures; new_request delivery "
          f"n={delivery['Request Count']} p50={delivery['50%']} ms p95={p95:g} ms (limit {limit:g} ms)")
    if p95 > limit:
        problems.append(f"new_request delivery p95 {p95:g} ms > {limit:g} ms")
if problems:
    print("ci_smoke: FAILED: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("ci_smoke: OK")
PY
