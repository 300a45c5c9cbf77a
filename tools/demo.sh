#!/usr/bin/env bash
# The main job: deploys the stack into a local systemd container with site.yml, then shows
# from this machine that the server answers, and where the UI is.
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

ansible-playbook -i inventories/demo.yml site.yml

ip="$(docker inspect -f '{{ range .NetworkSettings.Networks }}{{ .IPAddress }}{{ end }}' "$name")"
echo
echo "== The server answers this machine's CLI:"
temporal operator cluster health --address "$ip:7233"
temporal operator namespace list --address "$ip:7233" -o json | python3 -c 'import json,sys; print("namespaces:", ", ".join(n["namespaceInfo"]["name"] for n in json.load(sys.stdin)))'
echo
echo "Temporal frontend: $ip:7233   Web UI: http://$ip:8233   metrics: http://$ip:9233/metrics"
echo "Remove the demo with: docker rm -f $name"
