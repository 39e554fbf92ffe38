#!/usr/bin/env bash
# Reproduces docs/report.png: a real run of docs/report-demo.toml (an
# offline cohort, a flapping one, a server crash, and the drop-under-load
# bug switch), then its report.html in headless Chromium (Debian's
# `chromium` package: apt-get install -y chromium). About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null; then
  echo "chromium is missing: apt-get install -y chromium" >&2
  exit 2
fi

cargo build --release
bin="${CARGO_TARGET_DIR:-target}/release/reconnoiter"
reports=$(mktemp -d)

# The demo fails on purpose (lost broadcasts: exit 1); anything else is a problem.
set +e
"$bin" run docs/report-demo.toml --reports "$reports" --quiet
code=$?
set -e
if [ "$code" -ne 1 ] && [ "$code" -ne 3 ]; then
  echo "the demo run exited $code; expected 1 (violations) or 3 (thresholds)" >&2
  exit 1
fi

run=$(find "$reports" -mindepth 1 -maxdepth 1 -type d | head -n 1)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$(mktemp -d)" --hide-scrollbars \
  --screenshot="$PWD/docs/report.png" --window-size=1280,2200 \
  "file://$run/report.html"
echo "docs/report.png from $run"
