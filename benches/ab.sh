#!/usr/bin/env bash
# CPU per request of two zkgate binaries side by side: both run with one
# worker on core 1, the origin and `wrk` on core 0, and they take turns,
# round after round, so the machine's slow and fast phases fall on both.
# Prints each round and the medians.
#
#   ./benches/ab.sh OLD_BINARY NEW_BINARY        # ROUNDS=8 SECS=5 by default
#
# One binary against itself with a rule on one side (what a rule costs):
#   NEW_ROUTE='response_headers: { set: { x-edge: "1" } }' ./benches/ab.sh BIN BIN
# OLD_ROUTE / NEW_ROUTE, when set, put every request of that side through a
# route with those fields. OLD_CONFIG / NEW_CONFIG name whole configurations
# instead (`@PORT@`, `@ADMIN@` and `@ORIGIN@` are filled in); ORIGINS gives
# the origin's ports (a range like 19000-28999; the first is @ORIGIN@) and
# HOST the requests' Host (see benches/many_routes.sh).
#
# LOAD=h2 sends HTTP/2 (h2c, `h2load`, 64 connections × 10 streams)
# instead of HTTP/1.1 from `wrk`.
#
# Build the old one from a worktree: git worktree add /tmp/old REV &&
# (cd /tmp/old && cargo build --release --bin zkgate).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
OLD=$1 NEW=$2 ROUNDS=${ROUNDS:-8} SECS=${SECS:-5}
command -v wrk >/dev/null || { echo "missing wrk: apt-get install -y wrk" >&2; exit 1; }
[ "${LOAD:-h1}" != h2 ] || command -v h2load >/dev/null || { echo "missing h2load: apt-get install -y nghttp2-client" >&2; exit 1; }
cargo build --release --locked --quiet --example responder
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

# Fixed loopback ports: a benchmark, not a test.
ORIGINS=${ORIGINS:-18131}
ORIGIN=${ORIGINS%%-*}
taskset -c 0 ./target/release/examples/responder "$ORIGINS" & pids+=($!)
declare -A PORT=([old]=18231 [new]=18232) ADMIN=([old]=18931 [new]=18932) PID=()
for side in old new; do
  route=$([ "$side" = old ] && echo "${OLD_ROUTE:-}" || echo "${NEW_ROUTE:-}")
  routes=""
  [ -z "$route" ] || routes=", routes: [{ path_prefix: /, backend: web, $route }]"
  given=$([ "$side" = old ] && echo "${OLD_CONFIG:-}" || echo "${NEW_CONFIG:-}")
  if [ -n "$given" ]; then
    sed -e "s/@PORT@/${PORT[$side]}/g" -e "s/@ADMIN@/${ADMIN[$side]}/g" -e "s/@ORIGIN@/$ORIGIN/g" "$given" > "$work/$side.yaml"
  else
    cat > "$work/$side.yaml" <<CONF
admin: { bind: 127.0.0.1:${ADMIN[$side]} }
frontends:
  web: { bind: ["127.0.0.1:${PORT[$side]}"], default_backend: web$routes }
backends:
  web: { servers: [{ address: "127.0.0.1:$ORIGIN" }] }
CONF
  fi
  binary=$([ "$side" = old ] && echo "$OLD" || echo "$NEW")
  taskset -c 1 "$binary" run --workers 1 --config "$work/$side.yaml" 2>/dev/null & PID[$side]=$!; pids+=($!)
done
for side in old new; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:${ADMIN[$side]}/healthz" >/dev/null && break; sleep 0.1; done
done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
tick=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do
  for side in old new; do
    before=$(cpu_ticks "${PID[$side]}")
    url="http://127.0.0.1:${PORT[$side]}/64"
    if [ "${LOAD:-h1}" = h2 ]; then
      requests=$(taskset -c 0 h2load -c64 -m10 -D"$SECS" -H ":authority: ${HOST:-bench.test}" "$url" | awk '/^requests:/ { print $6 }')
    else
      requests=$(taskset -c 0 wrk -t1 -c32 -d"${SECS}s" -H "Host: ${HOST:-bench.test}" "$url" | awk '/requests in/ { print $1 }')
    fi
    after=$(cpu_ticks "${PID[$side]}")
    awk -v s="$side" -v r="$round" -v c=$((after - before)) -v t="$tick" -v q="$requests" -v d="$SECS" \
      'BEGIN { printf "%s round %d: %.2f µs/request, %d req/s\n", s, r, c / t * 1e6 / q, q / d }' | tee -a "$work/rounds"
  done
done
for side in old new; do
  grep "^$side " "$work/rounds" | awk '{ print $4 }' | sort -n |
    awk -v s="$side" '{ v[NR] = $1 } END { printf "%s median: %.2f µs/request\n", s, (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }'
done
