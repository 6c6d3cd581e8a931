#!/usr/bin/env bash
# The 64 B row through a frontend with 1,000 host routes (the request
# matching the last) in front of a backend of 10,000 servers, against the
# same request through one route to one server: CPU per request, side by
# side (benches/ab.sh). Both backends hash the path (`balance: uri`), so
# every request goes to one server: the cost measured is the routing table's
# size, not 10,000 pools of connections, which this machine's limit of
# 20,000 open files could not hold beside the 10,000 listening origins.
#
#   ./benches/many_routes.sh            # ROUNDS=8 SECS=5 by default
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet --bin zkgate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
FIRST=19000 SERVERS=10000 ROUTES=1000
cat > "$work/simple.yaml" <<CONF
admin: { bind: 127.0.0.1:@ADMIN@ }
frontends:
  web:
    bind: ["127.0.0.1:@PORT@"]
    routes: [{ host: app$((ROUTES - 1)).example, backend: web }]
    default_backend: web
backends:
  web: { balance: uri, servers: [{ address: "127.0.0.1:@ORIGIN@" }] }
CONF
{
  echo "admin: { bind: 127.0.0.1:@ADMIN@ }"
  echo "frontends:"
  echo "  web:"
  echo "    bind: [\"127.0.0.1:@PORT@\"]"
  echo "    routes:"
  for i in $(seq 0 $((ROUTES - 1))); do echo "      - { host: app$i.example, backend: web }"; done
  echo "    default_backend: web"
  echo "backends:"
  echo "  web:"
  echo "    balance: uri"
  echo "    servers:"
  for port in $(seq "$FIRST" $((FIRST + SERVERS - 1))); do echo "      - { address: \"127.0.0.1:$port\" }"; done
} > "$work/many.yaml"
ORIGINS="$FIRST-$((FIRST + SERVERS - 1))" HOST="app$((ROUTES - 1)).example" \
  OLD_CONFIG="$work/simple.yaml" NEW_CONFIG="$work/many.yaml" \
  ./benches/ab.sh target/release/zkgate target/release/zkgate
