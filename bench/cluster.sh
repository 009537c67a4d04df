#!/usr/bin/env bash
# Herald cluster vs nats-server cluster on this machine: one broadcast reaching CONNS WebSocket
# clients spread round-robin over NODES server processes, in the same run of the same tool.
#
#   bench/cluster.sh                                  # 100,000 clients over 6 nodes, 10 broadcasts, 1 s apart
#   CONNS=3000 NODES=3 bench/cluster.sh               # a quick check
#   MAX_LOAD=1.0 LOAD_WAIT_S=900 bench/cluster.sh     # first wait (up to 15 min) for a quiet machine
#   TARGETS=nats SKIP_BUILD=1 EXTRA="--grace-s 60" bench/cluster.sh
#
# Herald: NODES `herald serve` in cluster mode (a fresh PostgreSQL database created through psql
# at 127.0.0.1:5432 and dropped afterwards, the system NATS at nats://127.0.0.1:4222 with a subject
# prefix of the run's own). Its CPU is the nodes' plus that NATS's plus the database backends'.
# nats: NODES nats-servers joined by routes, each with a WebSocket listener.
#
# Then `herald-bench floor` (one plain send(2) to each of CONNS/NODES sockets, no server: what one
# node's share costs the kernel) unless FLOOR=0.
#
# Prints every run's JSON line, then Herald, nats-server and the floor: server CPU per delivery
# (Herald's ratio to the floor against its goal of 1.15, and to nats-server), time to the last
# client (kernel timestamps, median over broadcasts), memory per connection, and the time and
# server CPU to log every client in (goal: at most nats-server's); then per-node figures and the
# load averages.
# The JSON lines are also kept in $OUT (default /tmp/herald-cluster-<date>.jsonl).
set -euo pipefail

cd "$(dirname "$0")/.."
CONNS=${CONNS:-100000}
NODES=${NODES:-6}
BROADCASTS=${BROADCASTS:-10}
PAYLOAD=${PAYLOAD:-64}
INTERVAL_MS=${INTERVAL_MS:-1000}
TARGETS=${TARGETS:-"herald nats"}
OUT=${OUT:-${TMPDIR:-/tmp}/herald-cluster-$(date +%Y%m%d-%H%M%S).jsonl}
EXTRA=${EXTRA:-}
MAX_LOAD=${MAX_LOAD:-0.5}     # warn (or wait, see LOAD_WAIT_S) above this 1-minute load average
LOAD_WAIT_S=${LOAD_WAIT_S:-0} # wait at most this long before each run for the load to drop
PAUSE_S=${PAUSE_S:-10}        # between runs: let sockets close and the servers' memory go back
FLOOR=${FLOOR:-1}

if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p herald-bench -p herald-server >&2
fi
BENCH=target/release/herald-bench

above() { python3 -c "import sys; sys.exit(0 if float('$1') > float('$2') else 1)"; }

wait_quiet() {
    local load waited=0
    load=$(cut -d' ' -f1 /proc/loadavg)
    while above "$load" "$MAX_LOAD" && [ "$waited" -lt "$LOAD_WAIT_S" ]; do
        [ $((waited % 60)) -eq 0 ] && echo "load average $load > $MAX_LOAD: waiting (${waited}/${LOAD_WAIT_S} s)" >&2
        sleep 10
        waited=$((waited + 10))
        load=$(cut -d' ' -f1 /proc/loadavg)
    done
    if above "$load" "$MAX_LOAD"; then
        echo "warning: load average is $load; other work on these cores skews the numbers" >&2
    fi
}

: >"$OUT"
first=1
for target in $TARGETS; do
    [ -n "$first" ] || sleep "$PAUSE_S"
    first=
    wait_quiet
    echo "== $target: $CONNS clients over $NODES nodes, $BROADCASTS broadcasts of $PAYLOAD B every $INTERVAL_MS ms (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    # shellcheck disable=SC2086
    if line=$("$BENCH" fanout --target "$target" --nodes "$NODES" --conns "$CONNS" \
        --broadcasts "$BROADCASTS" --payload "$PAYLOAD" --interval-ms "$INTERVAL_MS" --json $EXTRA); then
        echo "$line" | tee -a "$OUT"
    else
        echo "run failed: $target $CONNS clients over $NODES nodes" >&2
    fi
done

if [ "$FLOOR" = 1 ]; then
    share=$(( (CONNS + NODES - 1) / NODES ))
    echo "== floor (send), $share sockets (one node's share)" >&2
    if line=$("$BENCH" floor --conns "$share" --rounds "$BROADCASTS" --interval-ms "$INTERVAL_MS" \
        --mode send --json); then
        echo "$line" | tee -a "$OUT"
    else
        echo "run failed: floor $share" >&2
    fi
fi

python3 - "$OUT" <<'PY'
import json, sys

runs, floor = {}, None
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        r = json.loads(line)
        if r["target"] == "floor":
            floor = r["cpu_us_per_send"]
        else:
            runs[r["target"]] = r

def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"

def ratio(h, n):
    return None if h is None or n in (None, 0) else h / n

h, n = runs.get("herald", {}), runs.get("nats", {})
conns = h.get("conns") or n.get("conns")
nodes = h.get("nodes") or n.get("nodes")
metrics = [
    ("server_cpu_us_per_delivery", "cpu us/delivery"),
    ("klast_median_ms", "last client ms"),
    ("server_kb_per_conn", "kB/conn"),
    ("login_s", "login s"),
    ("server_login_cpu_us_per_conn", "cpu us/login"),
]
print()
print(f"{conns} clients over {nodes} nodes")
print(f"{'metric':<16} | {'herald':>10} | {'nats':>10} | {'herald/nats':>11} | {'herald/floor':>12} | goal")
print("-" * 84)
for key, label in metrics:
    hv, nv = h.get(key), n.get(key)
    r = ratio(hv, nv)
    rf, verdict = "", ""
    if key == "server_cpu_us_per_delivery" and floor:
        f = ratio(hv, floor)
        rf = fmt(f, 3)
        verdict = "-" if f is None else ("<= 1.15 " + ("yes" if f <= 1.15 else "NO"))
    elif key in ("login_s", "server_login_cpu_us_per_conn"):
        verdict = "-" if r is None else ("<= nats " + ("yes" if r <= 1.0 else "NO"))
    print(f"{label:<16} | {fmt(hv):>10} | {fmt(nv):>10} | {fmt(r, 3):>11} | {rf:>12} | {verdict}")
if floor is not None:
    print(f"{'floor send(2)':<16} | {fmt(floor):>10} | {'':>10} | {'':>11} | {'':>12} |")
for name, r in (("herald", h), ("nats", n)):
    if not r:
        print(f"{name}: no result")
        continue
    ok = "yes" if r.get("received") == r.get("expected") else "NO"
    print(f"{name}: received {r.get('received')} of {r.get('expected')} ({ok}), "
          f"logged in {r.get('conns_ok')} of {r.get('conns')}, closed {r.get('closed')}, "
          f"api errors {r.get('api_errors')}, first error {r.get('first_error')}")
    parts = f"nodes {fmt(r.get('nodes_cpu_ms'), 0)} ms"
    if r.get("broker_cpu_ms") is not None or r.get("store_cpu_ms") is not None:
        parts += f" + NATS {fmt(r.get('broker_cpu_ms'), 0)} ms + PostgreSQL {fmt(r.get('store_cpu_ms'), 0)} ms"
    print(f"  server CPU {fmt(r.get('server_cpu_ms'), 0)} ms = {parts}; load average "
          f"{r.get('load_start')} at start, {r.get('load_broadcast')} at the first broadcast, {r.get('load_end')} at the end")
    for p in r.get("per_node", []):
        print(f"  node {p['node']}: {p['conns_ok']} clients, {p['received']} received, last client "
              f"{fmt(p.get('klast_median_ms'))} ms (median), CPU {fmt(p.get('cpu_ms'), 0)} ms "
              f"({fmt(p.get('cpu_us_per_delivery'))} us/delivery), {fmt(p.get('kb_per_conn'))} kB/conn")
print()
print(f"results: {sys.argv[1]}")
PY
