#!/usr/bin/env bash
# The collection's documentation: antsibull-docs lint, then an HTML site made the way
# antsibull-docs sphinx-init lays it out, in .cache/docs/build/html. $1: the tools' venv bin.
# Fails on a lint error, on a page antsibull-docs could only write as an error page, on a role or
# plugin without its page, and on any Sphinx warning other than a link into Ansible's own docs:
# those resolve through intersphinx, which needs docs.ansible.com, out of reach here (and offline).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="$(cd "$1" && pwd):$PATH"
# The collection as durable.temporal (collections/ links the checkout in) and the collections it
# refers to, from the controller venv's ansible package.
site="$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export ANSIBLE_COLLECTIONS_PATH="$root/collections:$site"
unset ANSIBLE_CONFIG
out="$root/.cache/docs"

(cd "$root/collections/ansible_collections/durable/temporal" && antsibull-docs lint-collection-docs --plugin-docs .)

rm -rf "$out"
mkdir -m 0755 "$out"
antsibull-docs sphinx-init --use-current --fail-on-error --squash-hierarchy --no-add-antsibull-docs-version \
  --dest-dir "$out" durable.temporal >/dev/null
cd "$out"
# No inventories to fetch: links to other projects' docs stay plain (see the warnings check below).
sed -i 's/^intersphinx_mapping = {/intersphinx_mapping = {} and {/' conf.py
mkdir -p rst
chmod og-w rst
antsibull-docs --config-file antsibull-docs.cfg collection --cleanup everything --fail-on-error --use-current \
  --squash-hierarchy --dest-dir rst durable.temporal >/dev/null
sphinx-build -M html rst build -c . -q -w warnings.txt 2>sphinx.log || { cat sphinx.log >&2; exit 1; }

outside="$(grep -v -E "WARNING: undefined label: '(ansible_collections\.(ansible|community)\.|(action_plugins|common_return_values|ansible_configuration_settings)')" warnings.txt || true)"
if [ -n "$outside" ]; then
  echo "Sphinx warnings:" >&2
  echo "$outside" >&2
  exit 1
fi
if grep -l -E "was malformed|There were some errors parsing the documentation" rst/*.rst; then
  echo "antsibull-docs wrote error pages (above)" >&2
  exit 1
fi
missing=()
for role in "$root"/roles/*/; do
  name="$(basename "$role")"
  [ -f "$role/meta/argument_specs.yml" ] || continue
  [ -f "build/html/${name}_role.html" ] || missing+=("role $name")
done
for plugin in "$root"/plugins/modules/*.py "$root"/plugins/lookup/*.py; do
  kind="$(basename "$(dirname "$plugin")")"
  kind="${kind%s}"
  [ -f "build/html/$(basename "$plugin" .py)_${kind}.html" ] || missing+=("$kind $(basename "$plugin" .py)")
done
for filter in $(grep -ho '"[a-z_]*": [a-z_]*' "$root"/plugins/filter/*.py | cut -d'"' -f2); do
  [ -f "build/html/${filter}_filter.html" ] || missing+=("filter $filter")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "no page for: ${missing[*]}" >&2
  exit 1
fi
echo "docs: $(ls build/html/*.html | wc -l) pages in $out/build/html, $(wc -l < warnings.txt) links into Ansible's docs left plain"
