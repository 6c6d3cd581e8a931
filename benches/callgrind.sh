#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: repeatable whatever
# else the machine does, so a change to the request path can be judged
# before and after in one sitting. One worker, 64-byte answers.
#
#   ./benches/callgrind.sh            # both rows
#   ROWS=h1 ./benches/callgrind.sh    # HTTP/1.1 keep-alive (the fast path)
#   ROWS=h2 ./benches/callgrind.sh    # h2c clients (zkgate's HTTP/2 layer, pooled HTTP/1.1 upstream)
#
# Needs valgrind, wrk and h2load (Debian: valgrind wrk nghttp2-client).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-"h1 h2"}
SECONDS_PER_ROW=${SECONDS_PER_ROW:-4}

for tool in valgrind callgrind_control wrk h2load; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y valgrind wrk nghttp2-client" >&2; exit 1; }
done
cargo build --release --locked --quiet --bin zkgate --example responder
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] && cp "$work"/cg.* /tmp/ 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

# Fixed loopback ports: a benchmark, not a test.
B1=18111 PROXY=18211 ADMIN=18911
./target/release/examples/responder "$B1" & pids+=($!)
cat > "$work/zkgate.yaml" <<CONF
admin: { bind: 127.0.0.1:$ADMIN }
frontends:
  web: { bind: ["127.0.0.1:$PROXY"], default_backend: web }
backends:
  web: { servers: [{ address: "127.0.0.1:$B1" }] }
CONF

requests() {
  curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '/^zkgate_frontend_requests_total/ { print $2 }'
}

for row in $ROWS; do
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/cg.$row" \
    ./target/release/zkgate run --workers 1 --config "$work/zkgate.yaml" 2>"$work/vg.$row" &
  pid=$!
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$ADMIN/healthz" >/dev/null && break; sleep 0.1; done
  # Warm: connections to the server exist before counting starts.
  wrk -t1 -c16 -d1s "http://127.0.0.1:$PROXY/64" >/dev/null
  before=$(requests)
  callgrind_control -i on "$pid" >/dev/null 2>&1
  case $row in
    h1) wrk -t1 -c16 -d"${SECONDS_PER_ROW}s" "http://127.0.0.1:$PROXY/64" >/dev/null ;;
    h2) h2load -c16 -m10 -D"$SECONDS_PER_ROW" "http://127.0.0.1:$PROXY/64" >/dev/null ;;
  esac
  callgrind_control -i off "$pid" >/dev/null 2>&1
  after=$(requests)
  # The counts are written as zkgate exits.
  kill "$pid"; wait "$pid" 2>/dev/null || true
  total=$(callgrind_annotate "$work/cg.$row" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  count=$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')
  printf '%s: %s instructions / %s requests = %s per request\n' "$row" "$total" "$count" \
    "$(awk -v t="$total" -v c="$count" 'BEGIN { printf "%.0f", t / c }')"
done
