#!/usr/bin/env bash
# Benchmark partita serve against DynamoDB Local, dynalite and Dynoxide.
#
#   bench/run.sh            full: 3 runs x 10 s per operation per target
#   bench/run.sh --quick    quick: 1 run x 3 s
#
# Options: --runs N  --duration S  --warmup S  --targets "partita dynalite ..."
#          --connections N  --no-install
#          --cluster       also measure cluster mode: partita dev-cluster with
#                          1 and with 2 partitions of 3 replicas on loopback
#                          (targets partita-cluster-1p, partita-cluster-2p),
#                          reported as ratios to partita serve
#          --indexes       also run the secondary-index benchmark on partita
#          --indexes-only  run only that (PutItem with 2 GSIs + 1 LSI vs none,
#                          GSI propagation delay); --runs sets its rounds
# Environment: PARTITA_PEERS_DIR (default /work/peers) where peers are
#   installed and reused; PEERS_STORAGE=memory|disk (default memory: each
#   peer's fastest mode); PARTITA_BIN (skip the release build, use this binary).
#
# Starts one target at a time on 127.0.0.1, each on a fresh data directory,
# runs the load generator against it, stops it; runs are interleaved (every
# target once per round, starting position rotating) so machine noise hits
# everyone alike. A target that cannot be installed or started is skipped with
# a message and shown as "not measured". Results: bench/results/<stamp>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=${PARTITA_PEERS_DIR:-/work/peers}
PEERS_STORAGE=${PEERS_STORAGE:-memory}
DYNOXIDE_VERSION=${DYNOXIDE_VERSION:-3.2.0}
SIMULATOR_VERSION=${SIMULATOR_VERSION:-2.9.30}
DYNALITE_VERSION=${DYNALITE_VERSION:-4.0.0}

RUNS=3
DURATION=10
WARMUP=2
CONNECTIONS=16
TARGETS="partita dynamodb-local dynalite dynoxide"
INSTALL=1
MODE=full
INDEXES=0

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) RUNS=1; DURATION=3; WARMUP=1; MODE=quick ;;
        --runs) RUNS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --targets) TARGETS=$2; shift ;;
        --no-install) INSTALL=0 ;;
        --indexes) INDEXES=1 ;;
        --indexes-only) INDEXES=only; TARGETS=partita ;;
        --cluster) TARGETS="$TARGETS partita-cluster-1p partita-cluster-2p" ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for v in "$RUNS" "$DURATION" "$WARMUP" "$CONNECTIONS"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "--runs, --duration, --warmup and --connections take whole numbers" >&2; exit 2; }
done
case "$PEERS_STORAGE" in memory|disk) ;; *) echo "PEERS_STORAGE must be memory or disk" >&2; exit 2 ;; esac

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/bench/results/$STAMP"
LOGS="$OUT/logs"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/partita-bench.XXXXXX")
mkdir -p "$LOGS"
BENCH="$ROOT/target/release/partita-bench"

log() { printf '[bench] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- cleanup
SERVER_PID=""
BENCH_PID=""
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
cleanup() {
    if [ -n "$BENCH_PID" ]; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    stop_server
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- install
# Each install step prints why a peer is unavailable and leaves its variable
# empty; the peer is then skipped.
DDB_JAR=""; DYNALITE_CLI=""; DYNOXIDE_BIN=""; PARTITA=""

find_jar() {
    # Reuse any DynamoDB Local already unpacked under the peers directory.
    find "$PEERS_DIR" -maxdepth 6 -path '*amplify-dynamodb-simulator/emulator/DynamoDBLocal.jar' 2>/dev/null | head -n 1
}

install_npm_peers() {
    local want=()
    DDB_JAR=$(find_jar)
    [ -n "$DDB_JAR" ] || want+=("amplify-dynamodb-simulator@$SIMULATOR_VERSION")
    DYNALITE_CLI=$(find "$PEERS_DIR" -maxdepth 4 -path '*node_modules/dynalite/cli.js' 2>/dev/null | head -n 1)
    [ -n "$DYNALITE_CLI" ] || want+=("dynalite@$DYNALITE_VERSION")
    if [ ${#want[@]} -gt 0 ] && [ "$INSTALL" = 1 ]; then
        if command -v npm >/dev/null; then
            log "installing ${want[*]} under $PEERS_DIR/npm"
            mkdir -p "$PEERS_DIR/npm"
            [ -f "$PEERS_DIR/npm/package.json" ] || echo '{"name":"partita-peers","private":true}' > "$PEERS_DIR/npm/package.json"
            timeout 600 npm install --prefix "$PEERS_DIR/npm" --no-audit --no-fund "${want[@]}" > "$LOGS/npm-install.log" 2>&1 \
                || log "npm install failed (see $LOGS/npm-install.log)"
            DDB_JAR=$(find_jar)
            DYNALITE_CLI=$(find "$PEERS_DIR" -maxdepth 4 -path '*node_modules/dynalite/cli.js' 2>/dev/null | head -n 1)
        else
            log "npm not found: cannot install ${want[*]}"
        fi
    fi
}

install_dynoxide() {
    if [ -x "$PEERS_DIR/cargo/bin/dynoxide" ]; then
        DYNOXIDE_BIN="$PEERS_DIR/cargo/bin/dynoxide"
    elif [ "$INSTALL" = 1 ]; then
        log "installing dynoxide-rs $DYNOXIDE_VERSION under $PEERS_DIR/cargo (compiles; a few minutes)"
        if timeout 1800 cargo install dynoxide-rs --version "$DYNOXIDE_VERSION" --locked \
            --root "$PEERS_DIR/cargo" > "$LOGS/dynoxide-install.log" 2>&1; then
            DYNOXIDE_BIN="$PEERS_DIR/cargo/bin/dynoxide"
        else
            log "cargo install dynoxide-rs failed (see $LOGS/dynoxide-install.log)"
        fi
    fi
}

build() {
    log "building partita-bench (release)"
    (cd "$ROOT" && cargo build --release -p partita-bench) > "$LOGS/build-bench.log" 2>&1 \
        || { cat "$LOGS/build-bench.log" >&2; log "cannot build the load generator"; exit 1; }
    if [[ " $TARGETS " != *" partita"* ]]; then
        return 0
    elif [ -n "${PARTITA_BIN:-}" ]; then
        PARTITA=$PARTITA_BIN
    else
        log "building partita (release)"
        if (cd "$ROOT" && cargo build --release -p partita) > "$LOGS/build-partita.log" 2>&1 \
            && [ -x "$ROOT/target/release/partita" ]; then
            PARTITA="$ROOT/target/release/partita"
        else
            log "cannot build partita (see $LOGS/build-partita.log); it will be skipped"
        fi
    fi
}

# ---------------------------------------------------------------- targets
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local p=18500
    while port_in_use "$p"; do
        p=$((p + 1))
        [ "$p" -lt 18600 ] || { echo "no free port in 18500-18599" >&2; return 1; }
    done
    echo "$p"
}

# storage_of TARGET: how the target keeps data, for the report.
storage_of() {
    case "$1:$PEERS_STORAGE" in
        partita:*) echo "disk, fsync before ack" ;;
        partita-cluster-*) echo "Raft: 3 replicas, quorum fsync" ;;
        dynamodb-local:memory) echo "in-memory (-inMemory)" ;;
        dynamodb-local:disk) echo "disk (SQLite -dbPath)" ;;
        dynalite:memory) echo "in-memory (LevelDB memdown)" ;;
        dynalite:disk) echo "disk (LevelDB --path, no fsync)" ;;
        dynoxide:memory) echo "in-memory (SQLite :memory:)" ;;
        dynoxide:disk) echo "disk (SQLite --db-path)" ;;
    esac
}

# available TARGET: prints why not and fails when the target cannot run.
available() {
    case "$1" in
        partita|partita-cluster-1p|partita-cluster-2p)
            [ -n "$PARTITA" ] || { echo "partita release binary not built"; return 1; } ;;
        dynamodb-local)
            [ -n "$DDB_JAR" ] || { echo "DynamoDBLocal.jar not installed"; return 1; }
            command -v java >/dev/null || { echo "java not found"; return 1; } ;;
        dynalite)
            [ -n "$DYNALITE_CLI" ] || { echo "dynalite not installed"; return 1; }
            command -v node >/dev/null || { echo "node not found"; return 1; } ;;
        dynoxide) [ -n "$DYNOXIDE_BIN" ] || { echo "dynoxide not installed"; return 1; } ;;
        *) echo "unknown target"; return 1 ;;
    esac
}

# start_target TARGET PORT DATA LOG: starts the server in the background and
# sets SERVER_PID, or sets START_ERR and fails. Every server is started
# directly (no wrapper process), and never inside $(...), so it stays a child
# of this shell and the EXIT trap can stop it.
START_ERR=""
start_target() {
    local target=$1 port=$2 data=$3 logf=$4
    mkdir -p "$data"
    case "$target" in
        partita)
            "$PARTITA" serve --host 127.0.0.1 --port "$port" --data-dir "$data" > "$logf" 2>&1 &
            ;;
        partita-cluster-*)
            # A gateway on $port in front of N Raft groups of 3 node processes.
            local partitions=${target#partita-cluster-}
            "$PARTITA" dev-cluster --partitions "${partitions%p}" --replicas 3 \
                --port "$port" --data-dir "$data" > "$logf" 2>&1 &
            ;;
        dynamodb-local)
            # DynamoDB Local has no bind-address option: it listens on every
            # interface of this machine; the load goes to 127.0.0.1 only.
            local where=(-inMemory)
            [ "$PEERS_STORAGE" = disk ] && where=(-dbPath "$data")
            (cd "$(dirname "$DDB_JAR")" && exec java -Djava.library.path=./DynamoDBLocal_lib \
                -jar DynamoDBLocal.jar -port "$port" -sharedDb -disableTelemetry "${where[@]}") > "$logf" 2>&1 &
            ;;
        dynalite)
            local where=()
            [ "$PEERS_STORAGE" = disk ] && where=(--path "$data")
            node "$DYNALITE_CLI" --host 127.0.0.1 --port "$port" "${where[@]}" > "$logf" 2>&1 &
            ;;
        dynoxide)
            local where=()
            [ "$PEERS_STORAGE" = disk ] && where=(--db-path "$data/dynoxide.db")
            "$DYNOXIDE_BIN" serve --host 127.0.0.1 --port "$port" --log quiet "${where[@]}" > "$logf" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    # Wait (bounded) for the port to accept connections.
    for _ in $(seq 1 300); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" 2>/dev/null || true
            SERVER_PID=""
            START_ERR="exited during startup: $(tail -n 3 "$logf" | tr '\n' ' ')"
            return 1
        fi
        if port_in_use "$port"; then
            [[ "$target" == partita-cluster-* ]] || return 0
            # The gateway listens before its groups have leaders.
            ready "$port" && return 0
        fi
        sleep 0.2
    done
    START_ERR="not listening on $port after 60 s"
    stop_server
    return 1
}

# ready PORT: the endpoint answers ListTables.
ready() {
    curl -s -o /dev/null -w '%{http_code}' -X POST \
        -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
        -H 'Content-Type: application/x-amz-json-1.0' \
        --data '{}' "http://127.0.0.1:$1/" 2>/dev/null | grep -q '^200$'
}

version_of() {
    case "$1" in
        partita|partita-cluster-*)
            local rev dirty=""
            rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null) || rev="?"
            [ -z "$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null)" ] || dirty=" + uncommitted changes"
            echo "partita built from $rev$dirty" ;;
        dynamodb-local) echo "DynamoDB Local $(sed -n 's/^\([0-9-]*\) (\([0-9.]*\))$/\2/p' "$(dirname "$DDB_JAR")/README.txt" | head -n 1)" ;;
        dynalite) echo "dynalite $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$(dirname "$DYNALITE_CLI")/package.json" | head -n 1)" ;;
        dynoxide)
            # The binary's --version lags the crate's; the install record is exact.
            grep -o 'dynoxide-rs [0-9.]*' "$(dirname "$DYNOXIDE_BIN")/../.crates.toml" 2>/dev/null \
                || echo "dynoxide (version unknown)" ;;
    esac
}

# ---------------------------------------------------------------- main
build
# shellcheck disable=SC2086
for t in $TARGETS; do
    case "$t" in
        dynamodb-local|dynalite) [ -n "$DDB_JAR$DYNALITE_CLI" ] || install_npm_peers ;;
        dynoxide) [ -n "$DYNOXIDE_BIN" ] || install_dynoxide ;;
    esac
done

read -r -a TARGET_LIST <<< "$TARGETS"
{
    echo "partita benchmark $STAMP ($MODE): $RUNS run(s) x ${DURATION} s per operation per target, ${WARMUP} s warm-up, $CONNECTIONS connections"
    echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; peers storage: $PEERS_STORAGE; data dirs on $(df -T "$SCRATCH" | awk 'NR==2 {print $2}')"
} | tee "$OUT/header.txt" >&2
LOAD=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD" 'BEGIN { exit !(l > 0.5) }'; then
    log "warning: the machine is busy (load $LOAD); numbers will be noisy"
fi

declare -A SKIPPED=()
for t in "${TARGET_LIST[@]}"; do
    if ! why=$(available "$t"); then
        log "SKIP $t: $why"
        SKIPPED[$t]=1
        "$BENCH" skip --target "$t" --storage "$(storage_of "$t")" --reason "$why" --out "$OUT/skip-$t.json"
    else
        echo "$t: $(version_of "$t"), $(storage_of "$t")" | tee -a "$OUT/header.txt" >&2
    fi
done

n=${#TARGET_LIST[@]}
[ "$INDEXES" != only ] || RUNS_MAIN=0
for run in $(seq 1 "${RUNS_MAIN:-$RUNS}"); do
    for i in $(seq 0 $((n - 1))); do
        t=${TARGET_LIST[$(( (i + run - 1) % n ))]}
        [ -z "${SKIPPED[$t]:-}" ] || continue
        port=$(free_port)
        data="$SCRATCH/$t-$run"
        logf="$LOGS/$t-run$run.log"
        log "run $run/$RUNS: $t on 127.0.0.1:$port"
        if ! start_target "$t" "$port" "$data" "$logf"; then
            log "SKIP $t: failed to start: $START_ERR (log: $logf)"
            SKIPPED[$t]=1
            "$BENCH" skip --target "$t" --storage "$(storage_of "$t")" \
                --reason "failed to start: $START_ERR" --out "$OUT/skip-$t.json"
            continue
        fi
        # Bounded: setup plus three warm-up and timed phases, with slack.
        limit=$(( 300 + 3 * (DURATION + WARMUP) ))
        # In the background and waited for, so Ctrl-C runs the trap at once.
        timeout "$limit" "$BENCH" run --target "$t" --storage "$(storage_of "$t")" \
            --endpoint "127.0.0.1:$port" --run "$run" --connections "$CONNECTIONS" \
            --duration "$DURATION" --warmup "$WARMUP" --out "$OUT/run-$run-$t.json" &
        BENCH_PID=$!
        wait "$BENCH_PID" || log "$t run $run did not complete (recorded; see above)"
        BENCH_PID=""
        stop_server
        rm -rf "$data"
    done
done

# The secondary-index benchmark: partita only, one server for all rounds.
if [ "$INDEXES" != 0 ] && [ -z "${SKIPPED[partita]:-}" ]; then
    port=$(free_port)
    data="$SCRATCH/partita-indexes"
    logf="$LOGS/partita-indexes.log"
    log "indexes: partita on 127.0.0.1:$port ($RUNS round(s))"
    if start_target partita "$port" "$data" "$logf"; then
        limit=$(( 300 + RUNS * 2 * (DURATION + WARMUP) + 2 * DURATION ))
        timeout "$limit" "$BENCH" indexes --endpoint "127.0.0.1:$port" --connections "$CONNECTIONS" \
            --duration "$DURATION" --warmup "$WARMUP" --rounds "$RUNS" --out "$OUT/indexes.json" &
        BENCH_PID=$!
        wait "$BENCH_PID" || log "the index benchmark did not complete"
        BENCH_PID=""
        stop_server
        rm -rf "$data"
    else
        log "indexes: partita failed to start: $START_ERR"
    fi
fi

echo >&2
cat "$OUT/header.txt"
[ "$INDEXES" = only ] || "$BENCH" report "$OUT"
[ ! -f "$OUT/indexes.txt" ] || cat "$OUT/indexes.txt"
log "results: $OUT (summary.txt, summary.json, one JSON per run, logs/)"
