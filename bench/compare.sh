#!/usr/bin/env bash
# Herald vs nats-server, side by side on this machine: broadcast fan-out to N WebSocket clients.
#
#   bench/compare.sh                      # 1,000 / 10,000 / 18,000 clients, 20 broadcasts of 64 B
#   SIZES="1000 5000" BROADCASTS=10 PAYLOAD=256 INTERVAL_MS=500 bench/compare.sh
#   TARGETS=nats SKIP_BUILD=1 EXTRA="--grace-s 10" bench/compare.sh
#
# Prints every run's JSON line, then a table at each size: Herald, nats-server and the floor —
# server CPU per delivery (with Herald's ratio to the floor and to nats-server, against Herald's
# goals: at most 1.15 x the floor at 10k and 18k, 1.3 x at 1k), time to the last client (kernel
# timestamps, median over broadcasts), memory per connection, and the time and server CPU to log
# all the clients in (each run logs its clients in first).
# The floor (`herald-bench floor`) is the CPU of one plain send(2), and of one io_uring send, to
# each socket with no server at all; FLOOR=0 skips it.
# The JSON lines are also kept in $OUT (default /tmp/herald-compare-<date>.jsonl).
set -euo pipefail

cd "$(dirname "$0")/.."
SIZES=${SIZES:-"1000 10000 18000"}
BROADCASTS=${BROADCASTS:-20}
PAYLOAD=${PAYLOAD:-64}
INTERVAL_MS=${INTERVAL_MS:-200}
TARGETS=${TARGETS:-"herald nats"}
OUT=${OUT:-${TMPDIR:-/tmp}/herald-compare-$(date +%Y%m%d-%H%M%S).jsonl}
EXTRA=${EXTRA:-}
FLOOR=${FLOOR:-1}

if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p herald-bench -p herald-server >&2
fi
BENCH=target/release/herald-bench

load=$(cut -d' ' -f1 /proc/loadavg)
if python3 -c "import sys; sys.exit(0 if float('$load') > 0.5 else 1)"; then
    echo "warning: load average is $load; other work on these 2 cores skews the numbers" >&2
fi

: >"$OUT"
for n in $SIZES; do
    for target in $TARGETS; do
        echo "== $target, $n clients, $BROADCASTS broadcasts of $PAYLOAD B every $INTERVAL_MS ms" >&2
        # shellcheck disable=SC2086
        if line=$("$BENCH" fanout --target "$target" --conns "$n" --broadcasts "$BROADCASTS" \
            --payload "$PAYLOAD" --interval-ms "$INTERVAL_MS" --json $EXTRA); then
            echo "$line" | tee -a "$OUT"
        else
            echo "run failed: $target $n" >&2
        fi
        sleep 2 # let TIME_WAIT sockets and the page cache settle between runs
    done
    if [ "$FLOOR" = 1 ]; then
        for mode in send uring; do
            echo "== floor ($mode), $n sockets" >&2
            if line=$("$BENCH" floor --conns "$n" --rounds "$BROADCASTS" --interval-ms "$INTERVAL_MS" \
                --mode "$mode" --json); then
                echo "$line" | tee -a "$OUT"
            else
                echo "run failed: floor $mode $n" >&2
            fi
        done
    fi
done

python3 - "$OUT" <<'PY'
import json, sys

runs, floors = {}, {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        r = json.loads(line)
        if r["target"] == "floor":
            floors[(r["mode"], r["conns"])] = r["cpu_us_per_send"]
        else:
            runs[(r["target"], r["conns"])] = r

def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"

def ratio(h, n):
    return None if h is None or n in (None, 0) else h / n

metrics = [
    ("server_cpu_us_per_delivery", "cpu us/delivery"),
    ("klast_median_ms", "last client ms"),
    ("server_kb_per_conn", "kB/conn"),
    ("login_s", "login all s"),
    ("server_login_cpu_us_per_conn", "cpu us/login"),
]
sizes = sorted({c for (_, c) in runs} | {c for (_, c) in floors})
print()
print(f"{'conns':>6} | {'metric':<16} | {'herald':>9} | {'nats':>9} | {'herald/nats':>11} | {'herald/floor':>12} | goal")
print("-" * 86)
for c in sizes:
    h, n = runs.get(("herald", c), {}), runs.get(("nats", c), {})
    floor = floors.get(("send", c))
    goal = 1.3 if c < 10000 else 1.15
    for key, label in metrics:
        hv, nv = h.get(key), n.get(key)
        rf, verdict = "", ""
        if key == "server_cpu_us_per_delivery" and floor:
            r = ratio(hv, floor)
            rf = fmt(r, 3)
            verdict = "-" if r is None else (f"<= {goal} " + ("yes" if r <= goal else "NO"))
        elif key == "login_s" or key == "server_login_cpu_us_per_conn":
            r = ratio(hv, nv)
            verdict = "-" if r is None else ("<= nats " + ("yes" if r <= 1.0 else "NO"))
        print(f"{c:>6} | {label:<16} | {fmt(hv, 2):>9} | {fmt(nv, 2):>9} | {fmt(ratio(hv, nv), 3):>11} | {rf:>12} | {verdict}")
    for mode in ("send", "uring"):
        fv = floors.get((mode, c))
        if fv is not None:
            label = "floor " + ("send(2)" if mode == "send" else "io_uring")
            print(f"{c:>6} | {label:<16} | {fmt(fv, 2):>9} | {'':>9} | {'':>11} | {'':>12} |")
    for name, r in (("herald", h), ("nats", n)):
        if r and r.get("received") != r.get("expected"):
            print(f"{c:>6} | {name}: received {r.get('received')} of {r.get('expected')}")
print()
print("floor: CPU per write of one 300 B send to each socket, no server (herald-bench floor); a server")
print("that writes once per connection cannot go below it.")
print(f"results: {sys.argv[1]}")
PY
