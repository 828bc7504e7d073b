#!/usr/bin/env bash
# Global-table replication lag between two local regions.
#
#   bench/replication.sh              3 runs x 10 s at 500 PutItem/s
#   bench/replication.sh --quick      1 run x 5 s
#
# Options: --runs N  --duration S  --rate N (PutItem/s in region A)
#          --writers N  --pollers N  --poll-ms N
#          --cluster N  each region is a `partita dev-cluster` with N
#                       partitions of 3 replicas (its gateway replicates)
# Environment: PARTITA_BIN (default: build target/release/partita),
#   LAG_BIN (default: build target/release/replication-lag); set both to
#   debug binaries to skip release builds.
#
# Each run starts two fresh `partita serve` processes on 127.0.0.1 as regions
# us-east-1 (A) and eu-west-1 (B), each with a replication file naming the
# other as its peer, and runs `replication-lag`: it creates a table with a
# NEW_AND_OLD_IMAGES stream in A, adds the replica in B (ReplicaUpdates), waits
# until both show it ACTIVE, writes at a steady rate in A and, for every
# acknowledged put, polls B until the item is visible. Lag = A's ack -> first
# read in B that sees it. Prints each run and the medians of p50/p99 over runs;
# results in bench/results/replication-<stamp>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=3
DURATION=10
RATE=500
WRITERS=4
POLLERS=8
POLL_MS=1
CLUSTER=0

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) RUNS=1; DURATION=5 ;;
        --runs) RUNS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --rate) RATE=$2; shift ;;
        --writers) WRITERS=$2; shift ;;
        --pollers) POLLERS=$2; shift ;;
        --poll-ms) POLL_MS=$2; shift ;;
        --cluster) CLUSTER=$2; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[replication-bench] %s\n' "$*" >&2; }
[[ "$CLUSTER" =~ ^[0-9]+$ ]] || { echo "--cluster takes a whole number of partitions" >&2; exit 2; }

PARTITA=${PARTITA_BIN:-}
LAG=${LAG_BIN:-}
if [ -z "$PARTITA" ]; then
    log "building partita (release)"
    (cd "$ROOT" && cargo build --release -p partita) >&2
    PARTITA="$ROOT/target/release/partita"
fi
if [ -z "$LAG" ]; then
    log "building replication-lag (release)"
    (cd "$ROOT" && cargo build --release -p partita-bench --bin replication-lag) >&2
    LAG="$ROOT/target/release/replication-lag"
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/bench/results/replication-$STAMP"
mkdir -p "$OUT"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/partita-replication.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap 'cleanup; rm -rf "$SCRATCH"' EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p=$1
    while port_in_use "$p"; do p=$((p + 1)); done
    echo "$p"
}

# file OWN PEER PEER_PORT: the replication file of region OWN.
file() {
    cat <<EOF
{"formatVersion": 1,
 "peers": [{"region": "$2", "endpoint": "http://127.0.0.1:$3",
            "accessKeyId": "AKREPL-$1-$2", "secretAccessKey": "bench-$1-$2"}],
 "inbound": [{"accessKeyId": "AKREPL-$2-$1", "secretAccessKey": "bench-$2-$1"}]}
EOF
}

wait_port() {
    for _ in $(seq 1 300); do
        port_in_use "$1" && return 0
        sleep 0.1
    done
    log "port $1 did not open"; return 1
}

for run in $(seq 1 "$RUNS"); do
    PA=$(free_port 18700); PB=$(free_port $((PA + 1)))
    AA=$(free_port $((PB + 1))); AB=$(free_port $((AA + 1)))
    DIR="$SCRATCH/run$run"; mkdir -p "$DIR/a" "$DIR/b"
    file us-east-1 eu-west-1 "$PB" > "$DIR/a.json"
    file eu-west-1 us-east-1 "$PA" > "$DIR/b.json"
    # region NAME PORT ADMIN DATA FILE LOG: starts one region in the background.
    region() {
        if [ "$CLUSTER" -gt 0 ]; then
            "$PARTITA" dev-cluster --partitions "$CLUSTER" --replicas 3 --port "$2" --data-dir "$4" \
                -- --region "$1" --replication "$5" --admin-port "$3" > "$6" 2>&1 &
        else
            "$PARTITA" serve --port "$2" --admin-port "$3" --data-dir "$4" --region "$1" \
                --replication "$5" > "$6" 2>&1 &
        fi
        PIDS+=($!)
    }
    region us-east-1 "$PA" "$AA" "$DIR/a" "$DIR/a.json" "$OUT/run$run-a.log"
    region eu-west-1 "$PB" "$AB" "$DIR/b" "$DIR/b.json" "$OUT/run$run-b.log"
    wait_port "$PA"; wait_port "$PB"
    # A gateway listens before its groups have leaders.
    for port in "$PA" "$PB"; do
        for _ in $(seq 1 300); do
            curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
                -H 'Content-Type: application/x-amz-json-1.0' --data '{}' "http://127.0.0.1:$port/" \
                | grep -q '^200$' && break
            sleep 0.1
        done
    done
    log "run $run/$RUNS: $RATE PutItem/s for ${DURATION}s"
    "$LAG" --a "127.0.0.1:$PA" --b "127.0.0.1:$PB" --rate "$RATE" --duration "$DURATION" \
        --writers "$WRITERS" --pollers "$POLLERS" --poll-ms "$POLL_MS" | tee "$OUT/run$run.json"
    curl -s "http://127.0.0.1:$AA/replication" > "$OUT/run$run-status.json" 2>/dev/null || true
    cleanup
done

python3 - "$OUT" "$CLUSTER" <<'EOF'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
runs = [json.loads(p.read_text()) for p in sorted(out.glob("run*.json")) if p.name[3:-5].isdigit()]
summary = {
    "runs": len(runs),
    "median_p50_ms": statistics.median(r["p50_ms"] for r in runs),
    "median_p99_ms": statistics.median(r["p99_ms"] for r in runs),
    "max_ms": max(r["max_ms"] for r in runs),
    "missing": sum(r["missing"] for r in runs),
    "rate": runs[0]["rate"] if runs else 0,
}
summary["cluster_partitions"] = int(sys.argv[2])
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary))
EOF
