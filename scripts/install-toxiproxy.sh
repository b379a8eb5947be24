#!/usr/bin/env bash
# Builds Toxiproxy's server (the TCP fault proxy the network-fault tests use) into
# $(go env GOPATH)/bin/toxiproxy-server. Quick when already there: the installed binary's module
# version is checked with `go version -m` (the binary itself reports "git" as its version).
set -euo pipefail

version="${TOXIPROXY_VERSION:-v2.5.0}"
out_dir="${GOBIN:-$(go env GOPATH)/bin}"
out="${out_dir}/toxiproxy-server"

if [[ -x "$out" ]] && go version -m "$out" 2>/dev/null | grep -q "github.com/Shopify/toxiproxy/v2[[:space:]]*${version}"; then
  echo "toxiproxy-server ${version} already installed at ${out}"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# `go install` names the binary after its package directory ("server"); build aside, then rename.
GOBIN="$work" go install "github.com/Shopify/toxiproxy/v2/cmd/server@${version}"
mkdir -p "$out_dir"
# Install via rename so a running toxiproxy-server keeps its (now unlinked) inode.
mv -f "$work/server" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
echo "installed toxiproxy-server ${version} at ${out}"
