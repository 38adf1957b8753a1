#!/bin/sh
# Installs a released gitgrant binary, verified by checksum, and puts it on PATH.
#
# The GitHub Action at the root of this repository (action.yml) runs this script
# from the action's own pinned ref, never from the caller's checkout. It also
# works on its own (GitLab CI, a laptop):
#
#   GITGRANT_VERSION=0.1.0 sh scripts/install-gitgrant.sh
#
# Environment:
#   GITGRANT_VERSION      required: the release, `0.1.0` or `v0.1.0`
#   GITGRANT_SHA256       optional: the expected SHA-256 of the archive; pins it
#                         even if the release's SHA256SUMS were replaced
#   GITGRANT_REPOSITORY   the GitHub repository of the releases (gitgrant/gitgrant)
#   GITGRANT_RELEASE_URL  the directory holding the archives and SHA256SUMS
#                         (default https://github.com/$GITGRANT_REPOSITORY/releases/download/v$VERSION)
#   GITGRANT_TARGET       the target triple (default: this machine's)
#   GITGRANT_INSTALL_DIR  where `gitgrant` goes (default: $RUNNER_TOOL_CACHE, else
#                         ~/.cache, under gitgrant/VERSION/TARGET/bin)
#   GITHUB_PATH           when set (GitHub Actions), the bin directory is appended
#
# The archive is gitgrant-VERSION-TARGET.tar.gz; its line in SHA256SUMS must match
# (and GITGRANT_SHA256 when given), or nothing is installed. A cached archive is
# checked again against the release's SHA256SUMS before it is used.
# Exit: 0 installed; 1 refused (checksum mismatch); 2 could not install.
set -eu

die() { printf 'install-gitgrant: error: %s\n' "$1" >&2; exit "${2:-2}"; }
say() { printf 'install-gitgrant: %s\n' "$1" >&2; }

version=${GITGRANT_VERSION:-}
version=${version#v}
[ -n "$version" ] || die "GITGRANT_VERSION is not set: name the release to install, e.g. GITGRANT_VERSION=0.1.0"
case $version in
  *[!0-9A-Za-z.+-]*) die "GITGRANT_VERSION \`$version\` is not a version (digits, letters, '.', '-', '+')" ;;
esac

repository=${GITGRANT_REPOSITORY:-gitgrant/gitgrant}
case $repository in
  */*) ;;
  *) die "GITGRANT_REPOSITORY \`$repository\` is not OWNER/NAME" ;;
esac

target=${GITGRANT_TARGET:-}
if [ -z "$target" ]; then
  os=$(uname -s)
  arch=$(uname -m)
  case $arch in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) die "no gitgrant release for the CPU \`$arch\`: build it from source: cargo install --locked --git https://github.com/$repository gitgrant" ;;
  esac
  case $os in
    Linux) target=$arch-unknown-linux-musl ;;
    Darwin) target=$arch-apple-darwin ;;
    *) die "no gitgrant release for the OS \`$os\`: build it from source: cargo install --locked --git https://github.com/$repository gitgrant" ;;
  esac
fi
case $target in
  *[!0-9A-Za-z._-]*) die "GITGRANT_TARGET \`$target\` is not a target triple" ;;
esac

expected_pin=$(printf '%s' "${GITGRANT_SHA256:-}" | tr 'A-F' 'a-f')
if [ -n "$expected_pin" ]; then
  case $expected_pin in
    *[!0-9a-f]*) die "GITGRANT_SHA256 is not a SHA-256 in hex (64 digits)" ;;
  esac
  [ ${#expected_pin} -eq 64 ] || die "GITGRANT_SHA256 is not a SHA-256 in hex (64 digits)"
fi

base=${GITGRANT_RELEASE_URL:-https://github.com/$repository/releases/download/v$version}
base=${base%/}
archive=gitgrant-$version-$target.tar.gz

command -v curl >/dev/null 2>&1 || die "curl is needed to download gitgrant"
command -v tar >/dev/null 2>&1 || die "tar is needed to unpack gitgrant"
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  die "sha256sum or shasum is needed to verify gitgrant"
fi

cache_root=${RUNNER_TOOL_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}}
cache=$cache_root/gitgrant/$version/$target
install_dir=${GITGRANT_INSTALL_DIR:-$cache/bin}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/install-gitgrant.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# fetch URL FILE WHAT: a clear error naming the release and the URL on failure.
fetch() {
  code=$(curl --silent --show-error --location --retry 3 --connect-timeout 20 \
    --output "$2" --write-out '%{http_code}' "$1" 2>"$tmp/curl.err") || {
    die "cannot download $3 of gitgrant $version from $1: $(tr '\n' ' ' <"$tmp/curl.err")"
  }
  case $code in
    2??) ;;
    404) die "gitgrant $version has no $3 at $1 (HTTP 404): is there a release v$version with an archive for $target?" ;;
    *) die "cannot download $3 of gitgrant $version from $1: HTTP $code" ;;
  esac
}

# Trust comes from the release's SHA256SUMS (fetched fresh every time) and the pin.
fetch "$base/SHA256SUMS" "$tmp/SHA256SUMS" "SHA256SUMS"
listed=$(awk -v f="$archive" '{ n = $2; sub(/^\*/, "", n); if (n == f) { print tolower($1); exit } }' "$tmp/SHA256SUMS")
[ -n "$listed" ] || die "gitgrant $version: SHA256SUMS at $base/SHA256SUMS lists no $archive (no release for $target?)"
if [ -n "$expected_pin" ] && [ "$listed" != "$expected_pin" ]; then
  die "refusing gitgrant $version: SHA256SUMS says $listed for $archive, but the pinned sha256 is $expected_pin" 1
fi

cached=$cache/$archive
if [ -f "$cached" ] && [ "$(sha256 "$cached")" = "$listed" ]; then
  say "using the cached $archive (checksum verified)"
  cp "$cached" "$tmp/$archive"
else
  say "downloading $base/$archive"
  fetch "$base/$archive" "$tmp/$archive" "the archive $archive"
  actual=$(sha256 "$tmp/$archive")
  if [ "$actual" != "$listed" ]; then
    die "refusing gitgrant $version: $archive has SHA-256 $actual, but SHA256SUMS says $listed (a tampered or truncated download); nothing was installed" 1
  fi
fi

mkdir "$tmp/unpack"
tar -xzf "$tmp/$archive" -C "$tmp/unpack" || die "cannot unpack $archive"
bin=$(find "$tmp/unpack" -type f -name gitgrant | head -n 1)
[ -n "$bin" ] || die "$archive holds no gitgrant binary"
chmod 755 "$bin"

mkdir -p "$install_dir" "$cache"
# Keep the verified archive for the next run (checked again then), then install atomically.
cp "$tmp/$archive" "$cache/$archive.partial" && mv "$cache/$archive.partial" "$cache/$archive" || true
cp "$bin" "$install_dir/.gitgrant.partial"
mv "$install_dir/.gitgrant.partial" "$install_dir/gitgrant"

if [ -n "${GITHUB_PATH:-}" ]; then
  printf '%s\n' "$install_dir" >>"$GITHUB_PATH"
fi
say "installed gitgrant $version ($target) in $install_dir"
printf '%s\n' "$install_dir/gitgrant"
