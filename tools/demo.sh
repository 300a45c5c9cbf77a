#!/usr/bin/env bash
# The main job: deploys the whole dev stack into a local systemd container with site.yml,
# runs a sample order end to end, then one through the HTTP API with curl, and prints their
# results and where the UI and Prometheus are.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
name=temporal-demo
image="${TEMPORAL_TEST_IMAGE:-local/debian12-systemd:latest}"

if ! docker inspect -f '{{ .State.Running }}' "$name" 2>/dev/null | grep -q true; then
  docker rm -f "$name" >/dev/null 2>&1 || true
  # The options that boot systemd as PID 1 here (--privileged is refused on these machines).
  docker run -d --name "$name" --hostname "$name" \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SYS_PTRACE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    -e container=docker --stop-signal SIGRTMIN+3 \
    "$image" /lib/systemd/systemd >/dev/null
fi
state="$(docker exec "$name" systemctl is-system-running --wait 2>/dev/null || true)"
echo "container $name is up (systemd: $state)"

# Prometheus listens on loopback by default; the demo opens it to this machine, as the dev server.
ansible-playbook -i inventories/demo.yml site.yml -e temporal_prometheus_web_listen_address=0.0.0.0:9090

ip="$(docker inspect -f '{{ range .NetworkSettings.Networks }}{{ .IPAddress }}{{ end }}' "$name")"
echo
echo "== The server answers this machine's CLI:"
temporal operator cluster health --address "$ip:7233"

echo
echo "== A sample order, end to end through the deployed worker:"
order_id="demo-order-$(date +%s)"
docker exec "$name" /opt/temporal-workers/venv/bin/temporal-workers order --id "$order_id" \
  --items-json '[{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}]' \
  --address "1 Main St, Springfield" --email reader@example.com
temporal workflow describe --workflow-id "$order_id" --address "$ip:7233" | grep -E "Status|Type" || true

echo
echo "== The same through the HTTP API (durable.temporal.api, loopback on the host):"
api_id="demo-api-order-$(date +%s)"
api_order="{\"order_id\": \"$api_id\", \"items\": [{\"sku\": \"BOOK-1\", \"quantity\": 2, \"unit_price_cents\": 1250}], \"address\": \"1 Main St, Springfield\"}"
echo "\$ curl -X POST -H 'Content-Type: application/json' -H 'Idempotency-Key: $api_id' -d '$api_order' http://127.0.0.1:8000/orders"
docker exec "$name" curl -sS -X POST -H 'Content-Type: application/json' -H "Idempotency-Key: $api_id" \
  -d "$api_order" http://127.0.0.1:8000/orders
echo
echo "\$ curl 'http://127.0.0.1:8000/workflows/$api_id/result?wait_seconds=30'"
docker exec "$name" curl -sS "http://127.0.0.1:8000/workflows/$api_id/result?wait_seconds=30"
echo

echo
echo "== Prometheus targets (after their first scrape):"
for _ in $(seq 1 30); do
  targets="$(docker exec "$name" curl -fsS http://127.0.0.1:9090/api/v1/targets)"
  if printf '%s' "$targets" | python3 -c 'import json, sys; t = json.load(sys.stdin)["data"]["activeTargets"]; sys.exit(0 if t and all(x["health"] != "unknown" for x in t) else 1)'; then
    break
  fi
  sleep 2
done
printf '%s' "$targets" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    print("  %-18s %-34s %s" % (t["labels"]["job"], t["scrapeUrl"], t["health"]))'

echo
echo "Temporal frontend: $ip:7233"
echo "Web UI:            http://$ip:8233/namespaces/default/workflows/$order_id"
echo "Prometheus:        http://$ip:9090/targets"
echo "HTTP API:          http://127.0.0.1:8000/docs inside the container (loopback only by default)"
echo "Remove the demo with: docker rm -f $name"
