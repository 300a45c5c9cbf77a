#!/usr/bin/env bash
# ansible-test sanity on what the collection ships, docker-less, with the Python of the venv given as $1.
#  - The tree is the built artifact (so build_ignore decides what is checked) unpacked under
#    ansible_collections/durable/temporal, plus tests/sanity and tests/config.yml.
#  - workers/ is left out: it is the source of a Python package that the worker role builds into a
#    wheel, not Ansible content, and has its own gates (ruff, mypy --strict, pytest).
#  - ansible-test puts pip into its sanity virtualenvs with a get-pip script fetched from a host these
#    machines cannot reach; tests/sanity/get_pip.py takes its place in ansible-test's cache, with a
#    pip wheel from PyPI. The virtualenvs are then filled from PyPI and kept in ~/.ansible/test/venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$(cd "$1" && pwd)"
# Outside the checkout: inside a git work tree ansible-test would only see files git tracks there.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cache="$HOME/.ansible/test/cache"
pip_version="$("$bin/python" -c 'import types; from ansible_test._internal.python_requirements import get_venv_packages as g; print(g(types.SimpleNamespace(version="3.11"))["pip"])')"

mkdir -p "$cache"
if [ ! -s "$cache/pip-$pip_version-py3-none-any.whl" ]; then
  "$bin/python" -m pip download -q --no-deps --only-binary=:all: -d "$cache" "pip==$pip_version"
fi
install -m 0644 "$root/tests/sanity/get_pip.py" "$cache/get_pip_${pip_version//./_}.py"

collection="$work/ansible_collections/durable/temporal"
mkdir -p "$collection/tests"
"$bin/ansible-galaxy" collection build --force --output-path "$work" "$root" >/dev/null
tar -C "$collection" -xzf "$work"/durable-temporal-*.tar.gz
rm -rf "$collection/workers"
cp -r "$root/tests/sanity" "$root/tests/config.yml" "$collection/tests/"
rm "$collection/tests/sanity/get_pip.py" "$collection/tests/sanity/run.sh"
cd "$collection"
"$bin/ansible-test" sanity --local --python 3.11 --color no
