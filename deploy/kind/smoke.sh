#!/bin/sh
# A smoke test of the Helm chart on a real cluster, run by hand (CI has no Kubernetes): a kind
# cluster, Stead's image loaded into it, the chart installed with its bundled PostgreSQL and Redis,
# one run through the API, then everything removed. Needs docker, kind, kubectl and helm.
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
echo "smoke test passed"
