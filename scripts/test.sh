#!/usr/bin/env bash
# Runs zkgate's whole test suite on a fresh machine: installs what is missing
# (ZooKeeper from Debian, Java, Chromium, sslscan, brotli, zstd, rustfmt,
# clippy, and aioquic from PyPI in a virtual environment under target/),
# then checks formatting, lints, and runs every test against real
# ZooKeeper and real servers. The /stats screenshot is left in target/tmp/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
# The /stats page is checked in a real browser.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# TLS frontends are scanned for old protocols and weak ciphers.
command -v sslscan >/dev/null 2>&1 || missing+=(sslscan)
# Compressed answers are decoded with the reference tools.
command -v brotli >/dev/null 2>&1 || missing+=(brotli)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    rustup component add "$component"
  fi
done

# HTTP/3 is also tested against a second implementation, aioquic (from
# PyPI), in a virtual environment of the project's own.
venv=target/aioquic-venv
if ! "$venv/bin/python" -c "import aioquic" 2>/dev/null; then
  echo "==> aioquic into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "aioquic==1.7.2"
fi

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "==> cargo test"
cargo test --locked --workspace --lib --bins --tests
