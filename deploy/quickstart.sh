#!/usr/bin/env bash
# Builds zkgate and runs it on this machine in front of three demo HTTP
# servers (127.0.0.1:9001-9003, weights 3:2:1), using config/zkgate.yaml.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "quickstart: $tool is required" >&2; exit 1; }
done

echo "==> building zkgate (release)"
cargo build --release --locked --quiet

workdir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$workdir"
}
trap cleanup EXIT INT TERM

for n in 1 2 3; do
  port=$((9000 + n))
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "quickstart: port $port is in use; stop what listens there first" >&2
    exit 1
  fi
  mkdir -p "$workdir/server$n"
  echo "demo server $n (127.0.0.1:$port)" > "$workdir/server$n/index.html"
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "$workdir/server$n" >/dev/null 2>&1 &
  pids+=($!)
done

cat <<'TOUR'
==> zkgate is starting on http://127.0.0.1:8080 (admin on 127.0.0.1:9900)

Try, in another terminal:
  for i in $(seq 6); do curl -s http://127.0.0.1:8080/; done   # 3:2:1 across the demo servers
  curl -s http://127.0.0.1:9900/metrics | grep zkgate_server_requests_total
  curl -s http://127.0.0.1:9900/ready
Edit config/zkgate.yaml (say, a weight), then reload without dropping a connection:
  pkill -HUP -f 'zkgate run'
TOUR
./target/release/zkgate run -c config/zkgate.yaml &
pids+=($!)
wait "${pids[-1]}"
