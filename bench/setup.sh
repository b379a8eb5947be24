#!/usr/bin/env bash
# Installs what the benchmark compares against: Centrifugo v6.9.1 (memory engine).
# Idempotent: does nothing when the binary is already there. Prints the binary's path last.
set -euo pipefail
GOBIN_DIR="$(go env GOBIN 2>/dev/null || true)"
[ -n "$GOBIN_DIR" ] || GOBIN_DIR="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
BIN="$GOBIN_DIR/centrifugo"
if [ ! -x "$BIN" ]; then
  echo "== go install github.com/centrifugal/centrifugo/v6@v6.9.1" >&2
  # Built without release ldflags, so `centrifugo version` says 0.0.0; the code is v6.9.1.
  go install github.com/centrifugal/centrifugo/v6@v6.9.1 >&2
fi
echo "$BIN"
