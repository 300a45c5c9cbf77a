#!/usr/bin/env bash
# CHANGELOG.md is what antsibull-changelog makes of changelogs/changelog.yaml: it is generated, not
# written by hand (a change goes into a fragment in changelogs/fragments/). $1: the tools' venv bin.
# antsibull-changelog lists the plugins through ansible-doc, which needs the collection under
# ansible_collections/durable/temporal: a copy of what it reads is made there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="$(cd "$1" && pwd):$PATH"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
copy="$work/ansible_collections/durable/temporal"
mkdir -p "$copy"
cp -r "$root/galaxy.yml" "$root/meta" "$root/plugins" "$root/roles" "$root/changelogs" "$copy/"
(cd "$copy" && antsibull-changelog lint && antsibull-changelog generate)
if ! diff -u "$root/CHANGELOG.md" "$copy/CHANGELOG.md"; then
  echo "CHANGELOG.md differs from what antsibull-changelog generates (above): add a fragment to" >&2
  echo "changelogs/fragments/ instead of editing CHANGELOG.md" >&2
  exit 1
fi
echo "CHANGELOG.md is up to date with changelogs/changelog.yaml"
