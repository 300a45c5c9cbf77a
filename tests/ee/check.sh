#!/usr/bin/env bash
# The collection's execution-environment metadata is complete. $1: the tools' venv bin.
#  1. ansible-builder introspect, run on the built collection installed in a scratch collections
#     path, finds meta/execution-environment.yml and reads every file it names (a missing or
#     unparsable one fails here) and reports exactly the requirements in meta/ee-*.txt.
#  2. ansible-builder create lays out the build context of tests/ee/execution-environment.yml with
#     the artifact as its galaxy requirement.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$(cd "$1" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Away from the checkout, whose ansible.cfg links the sources in as durable.temporal already.
cd "$work"
unset ANSIBLE_CONFIG
export ANSIBLE_COLLECTIONS_PATH="$work/collections"
"$bin/ansible-galaxy" collection build --output-path "$work" "$root" >/dev/null
artifact="$(ls "$work"/durable-temporal-*.tar.gz)"
"$bin/ansible-galaxy" collection install --force --no-deps -p "$work/collections" "$artifact" >/dev/null

"$bin/ansible-builder" introspect --sanitize "$work/collections" > "$work/introspect.yml"
"$bin/python" - "$work/introspect.yml" "$root/meta" <<'PY'
import re
import sys

import yaml

report = yaml.safe_load(open(sys.argv[1]))


def declared(name):
    lines = (line.split("#")[0].strip() for line in open(f"{sys.argv[2]}/{name}"))
    return sorted(line for line in lines if line)


def found(kind):
    return sorted(re.sub(r"\s*#.*$", "", entry).strip() for entry in report.get(kind) or [])


python, system = found("python"), found("system")
assert python == declared("ee-requirements.txt"), python
assert system == declared("ee-bindep.txt"), system
print(f"introspect: {len(python)} Python and {len(system)} system requirements from durable.temporal")
PY

mkdir -p "$work/ee"
cp "$root/tests/ee/execution-environment.yml" "$work/ee/"
cp "$artifact" "$work/ee/durable-temporal.tar.gz"
printf 'collections:\n  - name: collections/durable-temporal.tar.gz\n    type: file\n' > "$work/ee/requirements.yml"
(cd "$work/ee" && "$bin/ansible-builder" create -f execution-environment.yml -c context --output-filename Containerfile >/dev/null)
grep -q "ansible-galaxy collection install" "$work/ee/context/Containerfile"
grep -q "durable-temporal" "$work/ee/context/_build/requirements.yml"
cmp "$artifact" "$work/ee/context/_build/collections/durable-temporal.tar.gz"
echo "ansible-builder create: build context ready"
