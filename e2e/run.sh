#!/usr/bin/env bash
# Partita end-to-end test on kind (needs docker, kind, kubectl, helm, python3
# with boto3). Creates a 3-zone cluster, builds and loads the images,
# installs the chart, applies the sample Tables, waits for ACTIVE, runs the
# seed's boto3 program through the gateway while a data pod is killed,
# applies the sample GlobalTable and checks the rendered replication file,
# then checks status and metrics. Cleans up the cluster unless KEEP_CLUSTER=1.
#
# Cluster mode (`partita node` / `partita gateway`) is a later issue: until
# it lands, the data pods do not become ready and this script fails at the
# "wait for ACTIVE" step, by design.
set -euo pipefail

cd "$(dirname "$0")/.."
cluster=${CLUSTER_NAME:-partita}
ns_system=partita-system
ns_app=shop
tag=${IMAGE_TAG:-e2e}
timeout=${WAIT_TIMEOUT:-600s}
pids=()

log() { printf '==> %s\n' "$*"; }

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP_CLUSTER:-0} != 1 ]]; then
        kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

dump() {
    log "diagnostics"
    kubectl get tables,statefulsets,pods,pvc -A -o wide || true
    kubectl -n "$ns_system" logs deploy/partita-operator --tail=100 || true
    kubectl get events -A --sort-by=.lastTimestamp | tail -n 50 || true
}

log "create kind cluster $cluster"
kind create cluster --name "$cluster" --config e2e/kind-config.yaml --wait 120s

log "build and load images"
docker build --target partita -t "partita:$tag" .
docker build --target operator -t "partita-operator:$tag" .
kind load docker-image --name "$cluster" "partita:$tag" "partita-operator:$tag"

log "install the chart"
helm install partita charts/partita --namespace "$ns_system" --create-namespace \
    --set image.repository=partita --set image.tag="$tag" --set image.pullPolicy=Never \
    --set operator.image.repository=partita-operator --set operator.image.tag="$tag" \
    --set operator.image.pullPolicy=Never \
    --set gateway.auth=false \
    --wait --timeout "$timeout"

log "apply sample tables"
kubectl create namespace "$ns_app"
kubectl -n "$ns_app" apply -f manifests/samples/orders.yaml -f manifests/samples/accounts.yaml

log "wait for ACTIVE"
for t in orders accounts; do
    if ! kubectl -n "$ns_app" wait "table/$t" --for=jsonpath='{.status.tableStatus}'=ACTIVE --timeout="$timeout"; then
        dump
        exit 1
    fi
done
kubectl -n "$ns_app" get tables
test "$(kubectl -n "$ns_app" get table accounts -o jsonpath='{.status.partitionCount}')" = 2

log "internal RPC: mutual TLS, certificates issued, CA kept across an upgrade"
kubectl -n "$ns_app" get secret orders-rpc-tls accounts-rpc-tls >/dev/null
kubectl -n "$ns_system" get secret partita-gateway-rpc-tls >/dev/null
kubectl -n "$ns_app" logs orders-zone-a-0 | grep -q 'internal RPC: mutual TLS'
ca_before=$(kubectl -n "$ns_system" get secret partita-rpc-ca -o jsonpath='{.data.tls\.crt}')
cert_before=$(kubectl -n "$ns_app" get secret orders-rpc-tls -o jsonpath='{.data.tls\.crt}')
helm upgrade partita charts/partita --namespace "$ns_system" --reuse-values \
    --wait --timeout "$timeout"
sleep 10
ca_after=$(kubectl -n "$ns_system" get secret partita-rpc-ca -o jsonpath='{.data.tls\.crt}')
cert_after=$(kubectl -n "$ns_app" get secret orders-rpc-tls -o jsonpath='{.data.tls\.crt}')
[[ -n $ca_before && $ca_before == "$ca_after" && $cert_before == "$cert_after" ]]

log "port-forward the gateway and the operator metrics"
kubectl -n "$ns_system" port-forward svc/partita-gateway 18000:8000 18001:8001 >/dev/null &
pids+=($!)
kubectl -n "$ns_system" port-forward svc/partita-operator-metrics 18080:8080 >/dev/null &
pids+=($!)
sleep 3

log "run the seed program through the gateway while a data pod is killed"
(
    for _ in $(seq 1 30); do
        python3 examples/orders.py http://127.0.0.1:18000 >/dev/null
    done
) &
workload=$!
sleep 5
kubectl -n "$ns_app" delete pod orders-zone-b-0 --wait=false
if ! wait "$workload"; then
    log "the workload failed while a data pod was down"
    dump
    exit 1
fi
out=$(python3 examples/orders.py http://127.0.0.1:18000)
grep -q "CUSTOMER#1042" <<<"$out"

log "status recovers"
kubectl -n "$ns_app" wait table/orders --for=jsonpath='{.status.tableStatus}'=ACTIVE --timeout="$timeout"
kubectl -n "$ns_app" wait table/orders --for=condition=Available --timeout="$timeout"
ready=$(kubectl -n "$ns_app" get table orders -o jsonpath='{.status.ready}')
log "orders ready: $ready"
[[ ${ready%/*} == "${ready#*/}" ]]

log "time to live and spec changes reach the data plane"
# One boto3 call through the gateway: ddb OPERATION JSON-PARAMS prints the answer.
ddb() {
    python3 -c 'import boto3, json, sys
c = boto3.client("dynamodb", region_name="us-west-2", endpoint_url="http://127.0.0.1:18000",
                 aws_access_key_id="e2e", aws_secret_access_key="e2e")
print(json.dumps(getattr(c, sys.argv[1])(**json.loads(sys.argv[2])), default=str))' "$@"
}
ddb describe_time_to_live '{"TableName": "Orders"}' | grep -q '"TimeToLiveStatus": "ENABLED"'
kubectl -n "$ns_app" patch table orders --type merge \
    -p '{"spec":{"tags":[{"key":"app","value":"store"}],"deletionProtectionEnabled":true}}'
arn=$(kubectl -n "$ns_app" get table orders -o jsonpath='{.status.tableArn}')
changed=
for _ in $(seq 1 60); do
    if ddb list_tags_of_resource "{\"ResourceArn\": \"$arn\"}" | grep -q '"Value": "store"' &&
        ddb describe_table '{"TableName": "Orders"}' | grep -q '"DeletionProtectionEnabled": true'; then
        changed=1
        break
    fi
    sleep 2
done
[[ -n $changed ]] || { dump; exit 1; }
kubectl -n "$ns_app" wait table/orders --for=condition=Progressing=False --timeout="$timeout"
kubectl -n "$ns_app" patch table orders --type merge -p '{"spec":{"deletionProtectionEnabled":false}}'

log "global table: the operator renders the gateway's replication file"
kubectl -n "$ns_app" apply -f manifests/samples/global-table.yaml
file=
for _ in $(seq 1 60); do
    file=$(kubectl -n "$ns_system" get secret partita-gateway-replication \
        -o jsonpath='{.data.replication\.json}' 2>/dev/null | base64 -d || true)
    grep -q '"Orders"' <<<"$file" && break
    sleep 2
done
grep -q '"eu-west-1"' <<<"$file"
grep -q '"AKIAREPLUSE1000000001"' <<<"$file"
kubectl -n "$ns_app" get globaltables
# The sample peer does not exist, so Ready must not be True.
test "$(kubectl -n "$ns_app" get globaltable orders -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" != True

log "metrics"
curl -fsS http://127.0.0.1:18080/metrics | grep -q '^partita_operator_reconciles_total'
curl -fsS http://127.0.0.1:18080/metrics | grep -q 'controller="global-table"'
curl -fsS http://127.0.0.1:18001/metrics | grep -q '^partita_'

log "e2e passed"
