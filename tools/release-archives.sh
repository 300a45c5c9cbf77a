#!/usr/bin/env bash
# Builds the temporal-server and ui-server release archives from their Go modules, at the versions the
# server and ui roles pin, and lays them out as a mirror of the release sites under .cache/releases:
#   temporal/v<V>/temporal_<V>_linux_<arch>.tar.gz   + checksums.txt
#   ui-server/v<V>/ui-server_<V>_linux_<arch>.tar.gz + ui-server_<V>_checksums.txt
# The roles install from there through temporal_*_release_url, sha256 checked, as from any mirror.
# Built as the releases are (goreleaser): CGO_ENABLED=0, -trimpath, -s -w. Go's module and build caches
# stay where Go keeps them (under the home directory), so a second build takes seconds; the archives
# are rebuilt only when a pinned version or this script changes.
# Arguments, if any, are further temporal-server versions to build the same way: the releases an upgrade
# starts from (the cluster scenario's upgrade test builds the previous minor release so).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${TEMPORAL_RELEASES_DIR:-$root/.cache/releases}"
script_hash="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"

pinned() { # pinned VARIABLE FILE: the quoted value of a top-level variable in a defaults file
  local value
  value="$(awk -F'"' -v name="$1:" '$1 ~ "^" name {print $2; exit}' "$2")"
  [ -n "$value" ] || { echo "no $1 in $2" >&2; exit 1; }
  printf '%s' "$value"
}
server_version="$(pinned temporal_server_version "$root/roles/server/defaults/main.yml")"
ui_version="$(pinned temporal_ui_version "$root/roles/ui/defaults/main.yml")"

case "$(uname -m)" in x86_64) goarch=amd64 ;; aarch64) goarch=arm64 ;; *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;; esac
command -v go >/dev/null 2>&1 || { echo "go is not installed: the release archives are built from their Go modules" >&2; exit 1; }

# build NAME MODULE VERSION ARCHIVE CHECKSUMS PACKAGE=BINARY...: one archive of the named main packages.
build() {
  local name="$1" module="$2" version="$3" archive="$4" checksums="$5"
  shift 5
  local dir="$out/$name/v$version"
  local stamp="$dir/.built-by-$script_hash"
  if [ -f "$stamp" ] && [ -s "$dir/$checksums" ] && (cd "$dir" && sha256sum --quiet -c "$checksums"); then
    echo "$name $version: $dir/$archive is current"
    return
  fi
  local work
  work="$(mktemp -d "${TMPDIR:-/var/tmp}/release-build.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: the trap must remove this build's directory
  trap "rm -rf '$work'" RETURN
  echo "$name $version: building from $module@v$version (a first build takes several minutes)"
  # A module of our own that requires exactly the pinned version: MVS then selects the versions of
  # every dependency that the release's own go.mod names.
  (
    cd "$work"
    printf 'module durable.temporal/release-build\n\ngo 1.21\n' >go.mod
    local packages=() binaries=()
    local spec
    for spec in "$@"; do packages+=("${spec%%=*}@v$version"); done
    go get "${packages[@]}" >build.log 2>&1 || { cat build.log >&2; echo "cannot fetch $module@v$version" >&2; exit 1; }
    mkdir tree
    for spec in "$@"; do
      CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" \
        go build -trimpath -ldflags='-s -w' -o "tree/${spec##*=}" "${spec%%=*}" >>build.log 2>&1 \
        || { cat build.log >&2; echo "cannot build ${spec%%=*}@v$version" >&2; exit 1; }
      binaries+=("${spec##*=}")
    done
    # The module's license (and, for the server, its sample configs) travel along, as in the release.
    local src
    src="$(go list -m -f '{{.Dir}}' "$module")"
    install -m 0644 "$src/LICENSE" tree/LICENSE
    if [ -d "$src/config" ] && [ "$name" = temporal ]; then
      mkdir tree/config && find "$src/config" -maxdepth 1 -type f -exec install -m 0644 {} tree/config/ \;
    fi
    # Fixed owner, times and order: the same sources give the same bytes.
    (cd tree && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - -- *) | gzip -9n >"$archive"
  )
  mkdir -p "$dir"
  rm -f "$dir"/.built-by-*
  mv "$work/$archive" "$dir/$archive"
  (cd "$dir" && sha256sum "$archive" >"$checksums")
  touch "$stamp"
  echo "$name $version: built $dir/$archive ($(cut -c1-16 "$dir/$checksums")...)"
}

for version in "$server_version" "$@"; do
  build temporal go.temporal.io/server "$version" \
    "temporal_${version}_linux_${goarch}.tar.gz" checksums.txt \
    go.temporal.io/server/cmd/server=temporal-server \
    go.temporal.io/server/cmd/tools/sql=temporal-sql-tool \
    go.temporal.io/server/cmd/tools/tdbg=tdbg
done
build ui-server github.com/temporalio/ui-server/v2 "$ui_version" \
  "ui-server_${ui_version}_linux_${goarch}.tar.gz" "ui-server_${ui_version}_checksums.txt" \
  github.com/temporalio/ui-server/v2/cmd/server=ui-server
