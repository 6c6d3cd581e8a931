#!/usr/bin/env bash
# Runs zkgate on this machine the way it is meant to run: a local ZooKeeper
# (installed from Debian if missing), three demo HTTP servers registered in
# it with `zkgate server add`, and zkgate (config/zkgate.yaml) following
# /services/web. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

ZK_PORT=2181
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for tool in cargo python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "quickstart: $tool is required" >&2; exit 1; }
done
if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1; then
  echo "==> installing ZooKeeper (Debian package)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper default-jre-headless >/dev/null
fi

echo "==> building zkgate (release)"
cargo build --release --locked --quiet
zkgate=./target/release/zkgate

workdir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT INT TERM

if port_open "$ZK_PORT"; then
  echo "==> using the ZooKeeper already listening on 127.0.0.1:$ZK_PORT"
else
  echo "==> starting ZooKeeper on 127.0.0.1:$ZK_PORT"
  mkdir -p "$workdir/zk"
  cat > "$workdir/zoo.cfg" <<CFG
tickTime=500
dataDir=$workdir/zk
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
CFG
  java -Xmx256m -cp /usr/share/java/zookeeper.jar org.apache.zookeeper.server.quorum.QuorumPeerMain \
    "$workdir/zoo.cfg" >"$workdir/zookeeper.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do port_open "$ZK_PORT" && break; sleep 0.2; done
  port_open "$ZK_PORT" || { echo "quickstart: ZooKeeper did not start; see $workdir/zookeeper.log" >&2; exit 1; }
fi

echo "==> starting demo servers on 127.0.0.1:9001-9003 and registering them"
for n in 1 2 3; do
  port=$((9000 + n))
  if port_open "$port"; then
    echo "quickstart: port $port is in use; stop what listens there first" >&2
    exit 1
  fi
  mkdir -p "$workdir/server$n"
  echo "demo server $n (127.0.0.1:$port)" > "$workdir/server$n/index.html"
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "$workdir/server$n" >/dev/null 2>&1 &
  pids+=($!)
  # Registered only once it answers, as a real server would be.
  for _ in $(seq 50); do port_open "$port" && break; sleep 0.1; done
  # Start from a clean slate if an earlier run left this member behind.
  $zkgate server remove --zk "127.0.0.1:$ZK_PORT" --path /services/web "127.0.0.1:$port" >/dev/null 2>&1 || true
  $zkgate server add --zk "127.0.0.1:$ZK_PORT" --path /services/web "127.0.0.1:$port" --weight "$((4 - n))"
done

cat <<TOUR
==> zkgate is starting on http://127.0.0.1:8080 (admin on 127.0.0.1:9900)

In another terminal, watch traffic follow ZooKeeper:
  for i in \$(seq 6); do curl -s http://127.0.0.1:8080/; done          # weights 3:2:1
  $zkgate server list  --zk 127.0.0.1:$ZK_PORT --path /services/web
  $zkgate server set   --zk 127.0.0.1:$ZK_PORT --path /services/web 127.0.0.1:9001 --state drain
  $zkgate server set   --zk 127.0.0.1:$ZK_PORT --path /services/web 127.0.0.1:9003 --weight 10
  $zkgate server remove --zk 127.0.0.1:$ZK_PORT --path /services/web 127.0.0.1:9002
  curl -s http://127.0.0.1:9900/metrics | grep -E 'zkgate_(server_requests_total|discovery_members)'
TOUR
$zkgate run -c config/zkgate.yaml &
pids+=($!)
wait "${pids[-1]}"
