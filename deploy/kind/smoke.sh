#!/bin/sh
# A smoke test of the Helm chart on a real cluster, run by hand (CI has no Kubernetes): a kind
# cluster, Stead's image loaded into it, the chart installed with its bundled PostgreSQL and Redis,
# one run through the API; then the chart's control plane and listener modes: a deployment created
# through the control plane's API, applied by the listener's kubernetes backend, answering /ok;
# then everything removed. Needs docker, kind, kubectl, helm and python3 with cryptography.
#   deploy/kind/smoke.sh            (from the repository's root)
set -eu
cluster=stead-smoke
image=stead:0.1.0

cleanup() { kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; }
trap cleanup EXIT

docker build -f deploy/docker/Dockerfile -t "$image" .
kind create cluster --name "$cluster" --wait 120s
kind load docker-image "$image" --name "$cluster"
helm install stead deploy/helm/stead --namespace stead --create-namespace \
    --set networkPolicy.enabled=false --wait --timeout 10m
kubectl -n stead port-forward svc/stead 18000:8000 >/dev/null 2>&1 &
forward=$!
sleep 3
curl -fsS http://127.0.0.1:18000/ready
thread=$(curl -fsS -X POST http://127.0.0.1:18000/threads -H 'content-type: application/json' -d '{}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["thread_id"])')
curl -fsS -X POST "http://127.0.0.1:18000/threads/$thread/runs/wait" -H 'content-type: application/json' \
    -d '{"assistant_id": "chat", "input": {"messages": [{"role": "user", "content": "hi"}]}}'
echo
kill "$forward"
helm uninstall stead --namespace stead --wait

# The control plane and a listener (the listener's kubernetes backend applies a live deployment).
docker build -f deploy/docker/listener.Dockerfile -t stead-listener:0.1.0 .
kind load docker-image stead-listener:0.1.0 --name "$cluster"
key=$(python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
helm install cp deploy/helm/stead --namespace control --create-namespace \
    --set global.deployment_type=self_hosted_control_plane --set controlPlane.encryptionKey="$key" \
    --set networkPolicy.enabled=false --wait --timeout 10m
exec_cp() { kubectl -n control exec deploy/cp-stead-control-plane -- "$@"; }
api_key=$(exec_cp stead control-plane apikey create --tenant smoke --data-dir /data | tail -1)
licence=$(exec_cp stead license issue --subject smoke --scope data-plane --data-dir /data | tail -1)
kubectl -n control port-forward svc/cp-stead 11985:1985 >/dev/null 2>&1 &
forward=$!
sleep 3
cp_api() { curl -fsS -H "X-Api-Key: $api_key" -H 'content-type: application/json' "$@"; }
listener=$(cp_api -X POST http://127.0.0.1:11985/v2/listeners -d '{"compute_id": "kind"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
kubectl create namespace agents
helm install listener deploy/helm/stead --namespace control \
    --set global.deployment_type=self_hosted_data_plane --set listener.listenerId="$listener" \
    --set listener.controlPlaneUrl=http://cp-stead.control.svc:1985 \
    --set listener.licenseKey="$licence" --set "listener.watchNamespaces={agents}" \
    --set networkPolicy.enabled=false --wait --timeout 5m
deployment=$(cp_api -X POST http://127.0.0.1:11985/v2/deployments -d "{\"name\": \"smoke\",
    \"source\": \"external_docker\", \"source_revision_config\": {\"image_uri\": \"$image\"},
    \"source_config\": {\"listener_config\": {\"k8s_namespace\": \"agents\"}}, \"secrets\": []}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 1 120); do
    status=$(cp_api "http://127.0.0.1:11985/v2/deployments/$deployment" \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["active_revision_id"] or "")')
    [ -n "$status" ] && break
    sleep 5
done
[ -n "$status" ] || { echo "the listener did not deploy it"; exit 1; }
kubectl -n agents get deploy,svc,secret
kill "$forward"
echo "smoke test passed"
