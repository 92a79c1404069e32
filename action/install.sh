#!/usr/bin/env bash
# Installs the ktrace the GitHub Action runs and writes its path to
# $GITHUB_OUTPUT (path=...). A release tag is downloaded from the release's
# archives and checked against its checksums.txt; "source" builds the
# action's own checkout with Go.
#
# Environment: KTRACE_VERSION (a tag, "source", or empty: the action's ref
# when it is a tag, else source), KTRACE_ACTION_REF, KTRACE_SOURCE_DIR (the
# checkout to build), RUNNER_TEMP, RUNNER_OS, RUNNER_ARCH, GITHUB_OUTPUT;
# KTRACE_RELEASE_URL replaces the releases' base URL (tests use file://).
set -euo pipefail

fail() { echo "::error title=ktrace install::$*" >&2; exit 2; }

: "${RUNNER_TEMP:?RUNNER_TEMP is not set}"
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
version="${KTRACE_VERSION:-}"
if [ -z "$version" ]; then
  if [[ "${KTRACE_ACTION_REF:-}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]]; then
    version="$KTRACE_ACTION_REF"
  else
    version=source
  fi
fi
dest="$RUNNER_TEMP/ktrace-bin"
mkdir -p "$dest"
exe=ktrace
[ "${RUNNER_OS:-}" = Windows ] && exe=ktrace.exe

if [ "$version" = source ]; then
  src="${KTRACE_SOURCE_DIR:-${GITHUB_ACTION_PATH:-}}"
  [ -f "$src/go.mod" ] || fail "no ktrace source at '$src' to build"
  command -v go >/dev/null || fail "building ktrace from source needs Go on PATH"
  echo "building ktrace from $src..." >&2
  (cd "$src" && go build -trimpath -o "$dest/$exe" ./cmd/ktrace)
else
  [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || fail "version '$version': want a release tag such as v1.2.3, or source"
  case "${RUNNER_OS:-Linux}" in
    Linux) os=linux ;; macOS) os=darwin ;; Windows) os=windows ;;
    *) fail "runner OS '${RUNNER_OS}' has no ktrace release" ;;
  esac
  case "${RUNNER_ARCH:-X64}" in
    X64) arch=amd64 ;; ARM64) arch=arm64 ;;
    *) fail "runner architecture '${RUNNER_ARCH}' has no ktrace release" ;;
  esac
  ext=tar.gz
  [ "$os" = windows ] && ext=zip
  archive="ktrace_${version#v}_${os}_${arch}.$ext"
  base="${KTRACE_RELEASE_URL:-https://github.com/ktrace-dev/ktrace/releases/download}/$version"
  work="$(mktemp -d "$RUNNER_TEMP/ktrace-download.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  echo "downloading $archive ($version)..." >&2
  curl -fsSL --retry 3 -o "$work/$archive" "$base/$archive" || fail "cannot download $base/$archive"
  curl -fsSL --retry 3 -o "$work/checksums.txt" "$base/checksums.txt" || fail "cannot download $base/checksums.txt"
  want="$(awk -v n="$archive" '$2 == n || $2 == "*" n { print $1 }' "$work/checksums.txt")"
  [ -n "$want" ] || fail "checksums.txt of $version does not list $archive"
  if command -v sha256sum >/dev/null; then
    got="$(sha256sum "$work/$archive" | cut -d' ' -f1)"
  else
    got="$(shasum -a 256 "$work/$archive" | cut -d' ' -f1)"
  fi
  [ "$got" = "$want" ] || fail "checksum mismatch for $archive: got $got, checksums.txt says $want"
  if [ "$ext" = zip ]; then
    unzip -q -o "$work/$archive" "$exe" -d "$dest"
  else
    tar -xzf "$work/$archive" -C "$dest" "$exe"
  fi
fi
[ -x "$dest/$exe" ] || fail "no ktrace binary at $dest/$exe"
echo "path=$dest/$exe" >> "$GITHUB_OUTPUT"
"$dest/$exe" version >&2
