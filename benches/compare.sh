#!/usr/bin/env bash
# Side-by-side load benchmark: zkgate vs HAProxy vs nginx doing the same job
# on this machine, each proxy pinned to core 1, load generator and backends
# on core 0, in alternation (A B C, B C A, C A B …). Prints req/s, p99, the
# proxy's CPU time per request (utime+stime from /proc), how busy the load
# core and the proxy's core were (which one was the limit), and the ratios
# (medians of each round's ratios).
#
#   ./benches/compare.sh            # 5 rounds of 6 s per scenario
#   ROUNDS=9 SECONDS_PER_RUN=4 ./benches/compare.sh
#
# Many short rounds rather than a few long ones: a machine's speed can move
# by ±20 % over minutes, and the three runs of a round should see the same
# machine.
#
# Scenarios: HTTP/1.1 64-byte responses (keep-alive, wrk -t1 -c64), HTTP/1.1
# 1 MiB responses, L4 TCP mode with 64-byte and 1 MiB responses, and TLS termination (ECDSA P-256) both with
# keep-alive and with a new connection, so a full handshake, per request.
# `new-conn`: plain HTTP/1.1 with a new connection per request.
# `h2c`, `h2-tls`: HTTP/2 clients (h2load, 64 connections × 10 streams,
# 64 B answers) with prior knowledge and over TLS, HTTP/1.1 servers behind.
# `gzip`: 128 KiB HTML answers compressed with gzip at level 1 (nginx's
# default level; HAProxy's libslz has no levels), keep-alive: the CPU per
# request is the CPU per 1/8 MiB compressed.
# All traffic stays on 127.0.0.1. Last, zkgate alone in front of a
# 1,000-member ZooKeeper-backed backend, quiet and under 50 membership changes
# per second (`cargo bench --bench churn`, which it runs with the same
# ROUNDS and SECONDS_PER_RUN): the throughput change.
#
# `h3`: zkgate alone (the Debian HAProxy and nginx have no QUIC): HTTP/3
# keep-alive (examples/h3_load.rs, 64 connections × 10 streams, 64 B
# answers) beside HTTP/2 over TLS (h2load, the same shape), and a new QUIC
# connection per request (16 clients) beside a new TLS connection per
# request (wrk, HTTP/1.1, 16 connections): requests per CPU-second of
# zkgate and the ratios.
#
# `memory`: the resident size (RSS) of each proxy holding 9,000 client
# connections idle after one request each (plain, then TLS), and 9,000 each
# with a request in flight to a server that answers 10 s late, measured
# before, during, after, during a second round and after it. 9,000: a proxy
# may need two sockets a connection, and this machine's hard limit is
# 20,000 open files (MEMORY_CONNECTIONS, MEMORY_IN_FLIGHT change it;
# MEMORY_CASES and MEMORY_PROXIES pick rows, e.g. MEMORY_PROXIES=zkgate).
#
# CPU_CAP=50 caps each proxy to 50 % of its core with a CPU quota of the
# cgroup `cpu` controller (v1 `cpu.cfs_quota_us`, or v2 `cpu.max`), every
# proxy alike: the load core then keeps headroom, and req/s compares the
# proxies themselves rather than what the load core could drive.
#
#   SCENARIOS="small tls-new" ./benches/compare.sh   # a subset
#   VERBOSE=1 ./benches/compare.sh                   # also every run and how busy each core was, on stderr
#   BACKENDS=nginx ./benches/compare.sh              # nginx as the origin servers
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-6}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
for tool in haproxy nginx wrk; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
# HTTP/2 clients: h2load.
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
# nginx proxies TCP with its stream module.
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$STREAM_MODULE" ] || missing+=(libnginx-mod-stream)
SCENARIOS=${SCENARIOS:-small large tcp tcp-large tls-keepalive tls-new new-conn h2c h2-tls h3 gzip memory churn}
if [[ " $SCENARIOS " == *" churn "* ]]; then
  [ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
  command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
fi
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]/#nginx/nginx-light}" >/dev/null 2>&1
fi
[ "$(nproc)" -ge 2 ] || { echo "compare.sh needs 2 cores (proxy on one, load on the other)" >&2; exit 1; }

cargo build --release --locked --quiet --bin zkgate --example responder --example idle_clients --example h3_load
[[ " $SCENARIOS " != *" churn "* ]] || cargo bench --locked --quiet --bench churn --no-run 2>/dev/null
work=$(mktemp -d)
chmod 755 "$work"   # nginx workers (www-data) read the 1 MiB file from here
pids=()
uncap() { # the groups go once their processes are gone
  local group
  for group in /sys/fs/cgroup/cpu/zkbench-* /sys/fs/cgroup/zkbench-*; do
    [ -d "$group" ] && as_root rmdir "$group" 2>/dev/null || true
  done
}
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; uncap; }
trap cleanup EXIT INT TERM

# Ports (fixed, loopback only; a benchmark, not a test).
B1=18101 B2=18102 B3=18103
declare -A HTTP=([zkgate]=18201 [haproxy]=18202 [nginx]=18203)
declare -A TCP=([zkgate]=18301 [haproxy]=18302 [nginx]=18303)
declare -A TLS=([zkgate]=18401 [haproxy]=18402 [nginx]=18403)
declare -A GZ=([zkgate]=18501 [haproxy]=18502 [nginx]=18503)
declare -A H2C=([zkgate]=18601 [haproxy]=18602 [nginx]=18603)
declare -A H2TLS=([zkgate]=18701 [haproxy]=18702 [nginx]=18703)

# Backends on core 0, three ports, a 64-byte (/64) and a 1 MiB (/1m) answer.
# By default `examples/responder.rs`: it costs the load core ~1 µs less per
# request than nginx, which is what leaves the proxy's core the bottleneck
# here (with nginx backends the load core saturates first). BACKENDS=nginx
# uses one nginx worker instead.
if [ "${BACKENDS:-responder}" = nginx ]; then
  head -c 1048576 /dev/zero | tr '\0' 'x' > "$work/1m"
  cat > "$work/backends.conf" <<CONF
worker_processes 1; daemon off; pid $work/backends.pid; error_log $work/backends.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$B1; listen 127.0.0.1:$B2; listen 127.0.0.1:$B3; root $work;
    location = /64 { return 200 "0123456789012345678901234567890123456789012345678901234567890123"; }
    location = /1m { default_type application/octet-stream; } } }
CONF
  taskset -c 0 nginx -c "$work/backends.conf" & pids+=($!)
else
  taskset -c 0 ./target/release/examples/responder "$B1" "$B2" "$B3" & pids+=($!)
fi

# One certificate for every proxy: ECDSA P-256, as most sites serve today.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
  -subj /CN=bench.test -addext subjectAltName=DNS:bench.test \
  -keyout "$work/tls.key" -out "$work/tls.pem" 2>/dev/null
cat "$work/tls.pem" "$work/tls.key" > "$work/tls-combined.pem"

cat > "$work/zkgate.yaml" <<CONF
admin: { bind: 127.0.0.1:18900 }
frontends:
  web: { bind: ["127.0.0.1:${HTTP[zkgate]}"], default_backend: web }
  tls:
    bind: ["127.0.0.1:${TLS[zkgate]}"]
    tls: { certificates: [{ cert: "$work/tls.pem", key: "$work/tls.key" }], alpn: [http/1.1] }
    default_backend: web
  l4: { bind: ["127.0.0.1:${TCP[zkgate]}"], mode: tcp, default_backend: l4 }
  h2c: { bind: ["127.0.0.1:${H2C[zkgate]}"], default_backend: web }
  h2tls:
    bind: ["127.0.0.1:${H2TLS[zkgate]}"]
    tls: { certificates: [{ cert: "$work/tls.pem", key: "$work/tls.key" }], alpn: [h2, http/1.1] }
    http3: { bind: ["127.0.0.1:${H2TLS[zkgate]}"] }
    default_backend: web
  gz:
    bind: ["127.0.0.1:${GZ[zkgate]}"]
    compression: { algorithms: [gzip], types: [text/html], levels: { gzip: 1 } }
    default_backend: web
backends:
  web: { servers: [{ address: "127.0.0.1:$B1" }, { address: "127.0.0.1:$B2" }, { address: "127.0.0.1:$B3" }] }
  l4: { mode: tcp, servers: [{ address: "127.0.0.1:$B1" }, { address: "127.0.0.1:$B2" }, { address: "127.0.0.1:$B3" }] }
CONF
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  # Two sockets a connection (and a few splicing pipes) within this
  # machine's hard limit of 20,000 files.
  maxconn 9800
  maxpipes 64
defaults
  timeout connect 3s
  timeout client 60s
  timeout server 30s
frontend web
  mode http
  bind 127.0.0.1:${HTTP[haproxy]}
  bind 127.0.0.1:${TLS[haproxy]} ssl crt $work/tls-combined.pem alpn http/1.1
  bind 127.0.0.1:${H2C[haproxy]} proto h2
  bind 127.0.0.1:${H2TLS[haproxy]} ssl crt $work/tls-combined.pem alpn h2,http/1.1
  option http-keep-alive
  # What zkgate's forwarded_headers (on by default) does.
  option forwardfor
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  default_backend web
frontend gz
  mode http
  bind 127.0.0.1:${GZ[haproxy]}
  option http-keep-alive
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  compression algo gzip
  compression type text/html
  default_backend web
backend web
  mode http
  balance roundrobin
  http-reuse always
  server s1 127.0.0.1:$B1
  server s2 127.0.0.1:$B2
  server s3 127.0.0.1:$B3
listen l4
  mode tcp
  bind 127.0.0.1:${TCP[haproxy]}
  # Splices bulk data, as zkgate does between plain sockets.
  option splice-auto
  balance roundrobin
  server s1 127.0.0.1:$B1
  server s2 127.0.0.1:$B2
  server s3 127.0.0.1:$B3
CONF
cat > "$work/nginx-proxy.conf" <<CONF
load_module $STREAM_MODULE;
worker_processes 1; daemon off; pid $work/proxy.pid; error_log $work/proxy.err;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000;
  upstream web { server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3; keepalive 128; }
  server { listen 127.0.0.1:${HTTP[nginx]}; listen 127.0.0.1:${TLS[nginx]} ssl;
    listen 127.0.0.1:${H2C[nginx]} http2; listen 127.0.0.1:${H2TLS[nginx]} ssl http2;
    ssl_certificate $work/tls.pem; ssl_certificate_key $work/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;  # 1.22 defaults to 1.2 at most; the others speak 1.3
    location / { proxy_pass http://web; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host; } }
  server { listen 127.0.0.1:${GZ[nginx]}; gzip on; gzip_comp_level 1; gzip_min_length 1024;
    location / { proxy_pass http://web; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host; } } }
stream { upstream l4 { server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3; }
  server { listen 127.0.0.1:${TCP[nginx]}; proxy_pass l4; } }
CONF

# Sanity: the backends answer what each scenario expects.
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$B1/64" && break; sleep 0.1; done
size=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$B1/1m")
[ "$size" = 1048576 ] || { echo "compare.sh: backend /1m answered $size bytes" >&2; exit 1; }

declare -A PID MASTER
start_proxies() { # (re)starts the three proxies: the memory rows start each case afresh
  local proxy
  for proxy in zkgate haproxy nginx; do
    [ -z "${MASTER[$proxy]:-}" ] || { kill "${MASTER[$proxy]}" 2>/dev/null || true; wait "${MASTER[$proxy]}" 2>/dev/null || true; }
  done
  ZKGATE_LOG=warn taskset -c 1 ./target/release/zkgate run --workers 1 -c "$work/zkgate.yaml" 2>"$work/zkgate.err" & MASTER[zkgate]=$!; pids+=($!)
  taskset -c 1 haproxy -f "$work/haproxy.cfg" -db 2>"$work/haproxy.err" & MASTER[haproxy]=$!; pids+=($!)
  taskset -c 1 nginx -c "$work/nginx-proxy.conf" & MASTER[nginx]=$!; pids+=($!)
  sleep 1
  PID[zkgate]=${MASTER[zkgate]} PID[haproxy]=${MASTER[haproxy]}
  # nginx's master forks a worker: measure the worker.
  PID[nginx]=$(pgrep -P "${MASTER[nginx]}" | head -1 || true)
  for proxy in zkgate haproxy nginx; do
    if [ -z "${PID[$proxy]}" ] || ! kill -0 "${PID[$proxy]}" 2>/dev/null; then
      echo "compare.sh: $proxy did not start:" >&2
      cat "$work"/*.err >&2 || true
      exit 1
    fi
  done
}
# With CPU_CAP, each proxy runs in a cgroup of its own with that share of a core.
cap_proxy() { # proxy pid…
  local proxy=$1 group pid; shift
  [ -n "${CPU_CAP:-}" ] || return 0
  if [ -d /sys/fs/cgroup/cpu ]; then
    group=/sys/fs/cgroup/cpu/zkbench-$proxy
    as_root mkdir -p "$group"
    echo 100000 | as_root tee "$group/cpu.cfs_period_us" >/dev/null
    echo $((CPU_CAP * 1000)) | as_root tee "$group/cpu.cfs_quota_us" >/dev/null
  else
    group=/sys/fs/cgroup/zkbench-$proxy
    as_root mkdir -p "$group"
    echo "$((CPU_CAP * 1000)) 100000" | as_root tee "$group/cpu.max" >/dev/null
  fi
  for pid in "$@"; do echo "$pid" | as_root tee "$group/cgroup.procs" >/dev/null; done
}

start_proxies
cap_proxy zkgate "${PID[zkgate]}"
cap_proxy haproxy "${PID[haproxy]}"
cap_proxy nginx "${MASTER[nginx]}" "${PID[nginx]}"
[ -z "${CPU_CAP:-}" ] || echo "each proxy capped to ${CPU_CAP} % of a core" >&2

for proxy in zkgate haproxy nginx; do
  encoding=$(curl -s -o /dev/null -D - -H "Accept-Encoding: gzip" "http://127.0.0.1:${GZ[$proxy]}/text" | tr -d '\r' | awk 'tolower($1)=="content-encoding:" {print $2}')
  [ "$encoding" = gzip ] || { echo "compare.sh: $proxy did not compress /text ('$encoding')" >&2; exit 1; }
  if [[ " $SCENARIOS " == *" gzip "* ]]; then
    sent=$(curl -s -o /dev/null -w '%{size_download}' -H "Accept-Encoding: gzip" "http://127.0.0.1:${GZ[$proxy]}/text")
    echo "gzip: $proxy sends $sent bytes for the 131072-byte page" >&2
  fi
  answer=$(curl -sk "https://127.0.0.1:${TLS[$proxy]}/64" || true)
  [ ${#answer} = 64 ] || { echo "compare.sh: $proxy over TLS answered '$answer'" >&2; cat "$work"/*.err >&2 || true; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)
# Busy and idle ticks of each core: "busy0 idle0 busy1 idle1".
core_ticks() { awk '$1=="cpu0" || $1=="cpu1" {printf "%d %d ", $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }

summary() { # rps p99 proxy_ticks requests cores_before cores_after -> "rps p99_ms cpu_us_per_request load_core_% proxy_core_%"
  awk -v r="$1" -v p="$2" -v t="$3" -v hz="$ticks_per_second" -v n="$4" -v b="$5" -v a="$6" \
    'BEGIN { split(b, x); split(a, y)
             printf "%.0f %.2f %.1f %.0f %.0f\n", r, p, t / hz * 1e6 / (n > 0 ? n : 1),
               100 * (y[1] - x[1]) / (y[1] - x[1] + y[2] - x[2] + 1e-9),
               100 * (y[3] - x[3]) / (y[3] - x[3] + y[4] - x[4] + 1e-9) }'
}

run() { # proxy url [wrk options…] -> "rps p99_ms cpu_us_per_request load_core_% proxy_core_%"
  local proxy=$1 url=$2 before after out rps p99 requests cores_before cores_after
  shift 2
  before=$(cpu_ticks "${PID[$proxy]}")
  cores_before=$(core_ticks)
  out=$(taskset -c 0 wrk -t1 -c64 -d"${SECONDS_PER_RUN}s" --latency "$@" "$url")
  cores_after=$(core_ticks)
  after=$(cpu_ticks "${PID[$proxy]}")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
  summary "$rps" "$p99" $((after - before)) "$requests" "$cores_before" "$cores_after"
}

run_h2() { # proxy url -> as run(), with h2load: 64 connections × 10 streams, p99 from its request log
  local proxy=$1 url=$2 before after out rps p99 requests cores_before cores_after
  before=$(cpu_ticks "${PID[$proxy]}")
  cores_before=$(core_ticks)
  out=$(taskset -c 0 h2load -t1 -c64 -m10 -D "${SECONDS_PER_RUN}" --log-file="$work/h2.log" "$url")
  cores_after=$(core_ticks)
  after=$(cpu_ticks "${PID[$proxy]}")
  rps=$(awk '/^finished in/ {print $4}' <<<"$out")
  requests=$(awk '/^requests:/ {print $8}' <<<"$out")
  # The log's third column is each request's time in microseconds.
  p99=$(awk '{print $3}' "$work/h2.log" | sort -n | awk '{a[NR]=$1} END {print (NR ? a[int(NR * 0.99)] / 1000 : 0)}')
  summary "$rps" "$p99" $((after - before)) "$requests" "$cores_before" "$cores_after"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

churn() { # zkgate alone: quiet vs 50 membership changes/s, same rounds and run length
  local summary
  summary=$(CHURN_ROUNDS=$ROUNDS CHURN_SECONDS=$SECONDS_PER_RUN cargo bench --locked --quiet --bench churn 2>"$work/churn.err" | tail -1)
  [ -z "${VERBOSE:-}" ] || grep '^round:' "$work/churn.err" | sed 's/^/churn                  /' >&2
  [[ $summary == *"throughput change"* ]] || { echo "compare.sh: the churn bench failed:" >&2; cat "$work/churn.err" >&2; exit 1; }
  # "… quiet Q req/s at C µs CPU/request, 50 changes/s R req/s at D µs: throughput change T%, CPU per request U% (…)"
  sed -E 's/.*quiet ([0-9]+) req\/s at ([0-9.]+) µs.*changes\/s ([0-9]+) req\/s at ([0-9.]+) µs: throughput change ([-+0-9.]+%), CPU per request ([-+0-9.]+%) \((.*)\)$/\1 \2 \3 \4 \5 \6|\7/' <<<"$summary" |
    { IFS='|' read -r numbers detail
      read -r q qc c cc change cpu_change <<<"$numbers"
      printf "%-22s %-8s %10s %9s %12s\n" "churn: quiet" zkgate "$q" - "$qc"
      printf "%-22s %-8s %10s %9s %12s\n" "churn: 50 changes/s" zkgate "$c" - "$cc"
      printf "%-22s throughput %s   CPU/req %s   (%s)\n" churn "$change" "$cpu_change" "$detail"; }
}

run_h3() { # url_port connections streams [--new] -> "rps p99_ms cpu_us_per_request load_core_% proxy_core_%"
  local port=$1 before after out rps p99 requests cores_before cores_after
  shift
  before=$(cpu_ticks "${PID[zkgate]}")
  cores_before=$(core_ticks)
  out=$(taskset -c 0 ./target/release/examples/h3_load "127.0.0.1:$port" "$1" "$2" "${SECONDS_PER_RUN}" /64 "${@:3}")
  cores_after=$(core_ticks)
  after=$(cpu_ticks "${PID[zkgate]}")
  # "requests N seconds S p99_ms P errors E"
  read -r _ requests _ seconds _ p99 _ errors <<<"$out"
  [ "$errors" = 0 ] || echo "h3: $errors requests failed" >&2
  rps=$(awk -v n="$requests" -v s="$seconds" 'BEGIN { print n / s }')
  summary "$rps" "$p99" $((after - before)) "$requests" "$cores_before" "$cores_after"
}

h3() { # zkgate alone: HTTP/3 beside HTTP/2 over TLS, and QUIC handshakes beside TLS ones
  local round row rps p99 cpu load_core proxy_core
  declare -A R=() C=() P=()
  local rows=(h2-tls h3 tls-new h3-new)
  for round in $(seq "$ROUNDS"); do
    for row in "${rows[@]}"; do
      case $row in
        h2-tls) read -r rps p99 cpu load_core proxy_core < <(run_h2 zkgate "https://127.0.0.1:${H2TLS[zkgate]}/64") ;;
        h3) read -r rps p99 cpu load_core proxy_core < <(run_h3 "${H2TLS[zkgate]}" 64 10) ;;
        tls-new) read -r rps p99 cpu load_core proxy_core < <(run_new_tls) ;;
        h3-new) read -r rps p99 cpu load_core proxy_core < <(run_h3 "${H2TLS[zkgate]}" 16 1 --new) ;;
      esac
      [ -z "${VERBOSE:-}" ] || printf "%-22s %-8s %10s %9s %12s   (round %s; cores busy: load %s%%, proxy %s%%)\n" \
        "$row" zkgate "$rps" "$p99" "$cpu" "$round" "$load_core" "$proxy_core" >&2
      R[$row]+="$rps "; C[$row]+="$cpu "; P[$row]+="$p99 "
    done
  done
  for row in "${rows[@]}"; do
    printf "%-22s %-8s %10.0f %9.2f %12.1f\n" "h3: $row" zkgate \
      "$(tr ' ' '\n' <<<"${R[$row]}" | grep . | median)" \
      "$(tr ' ' '\n' <<<"${P[$row]}" | grep . | median)" \
      "$(tr ' ' '\n' <<<"${C[$row]}" | grep . | median)"
  done
  # Per round, as the other ratios: CPU per request of the TCP row over the QUIC row's.
  ratio() { paste -d' ' <(tr ' ' '\n' <<<"${C[$1]}" | grep .) <(tr ' ' '\n' <<<"${C[$2]}" | grep .) | awk '{print $1 / $2}' | median; }
  printf "%-22s HTTP/3 keep-alive req per CPU-second ×%.2f of HTTP/2 over TLS; QUIC handshakes per CPU-second ×%.2f of TLS ones\n" \
    h3 "$(ratio h2-tls h3)" "$(ratio tls-new h3-new)"
}

run_new_tls() { # zkgate, a new TLS connection per request, HTTP/1.1, 16 connections (wrk's last -c wins)
  run zkgate "https://127.0.0.1:${H2TLS[zkgate]}/64" -c16 -H "Connection: close"
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

memory() { # RSS rows: idle plain, idle TLS, in flight; for each proxy
  local count case proxy port args start during1 after1 during2 after2 opened line
  printf "%-22s %-8s %10s %10s %10s %10s %10s %12s\n" "memory (RSS, MB)" proxy start during after during2 after2 "bytes/conn"
  local proxies=${MEMORY_PROXIES:-zkgate haproxy nginx}
  for case in ${MEMORY_CASES:-idle idle-tls in-flight}; do
    for proxy in $proxies; do
      case $case in
        idle) port=${HTTP[$proxy]}; args=(/64); count=${MEMORY_CONNECTIONS:-9000} ;;
        idle-tls) port=${TLS[$proxy]}; args=(/64 --tls); count=${MEMORY_CONNECTIONS:-9000} ;;
        in-flight) port=${HTTP[$proxy]}; args=(/slow --in-flight); count=${MEMORY_IN_FLIGHT:-9000} ;;
      esac
      hold() { # opens, reports RSS while held, closes, waits for the proxy to settle
        coproc CLIENTS { ./target/release/examples/idle_clients "127.0.0.1:$port" "$1" "${args[@]}"; }
        read -r line <&"${CLIENTS[0]}"
        opened=$(awk '{print $2}' <<<"$line")
        sleep 1
        echo "$(rss_kb "${PID[$proxy]}") $opened"
        echo >&"${CLIENTS[1]}"; read -r _ <&"${CLIENTS[0]}" || true; wait "$CLIENTS_PID" 2>/dev/null || true
        # Requests in flight end when the server answers (10 s after they came).
        if [ "$case" = in-flight ]; then sleep 12; else sleep 4; fi
      }
      if [ "$proxy" = "${proxies%% *}" ]; then  # each case starts with fresh processes
        start_proxies
        cap_proxy zkgate "${PID[zkgate]}"; cap_proxy haproxy "${PID[haproxy]}"
        cap_proxy nginx "${MASTER[nginx]}" "${PID[nginx]}"
      fi
      hold 200 >/dev/null  # warm: one-time allocations are not per connection
      start=$(rss_kb "${PID[$proxy]}")
      line=$(hold "$count"); read -r during1 opened <<<"$line"; after1=$(rss_kb "${PID[$proxy]}")
      line=$(hold "$count"); read -r during2 _ <<<"$line"; after2=$(rss_kb "${PID[$proxy]}")
      [ "$opened" = "$count" ] || echo "memory: $proxy held $opened of $count connections ($case)" >&2
      awk -v c="$case" -v p="$proxy" -v s="$start" -v d="$during1" -v a="$after1" -v e="$during2" -v f="$after2" -v n="$opened" \
        'BEGIN { printf "%-22s %-8s %10.1f %10.1f %10.1f %10.1f %10.1f %12.0f\n", "memory: " c, p, s/1024, d/1024, a/1024, e/1024, f/1024, (d - s) * 1024 / (n > 0 ? n : 1) }'
    done
  done
}

printf "%-22s %-8s %10s %9s %12s\n" scenario proxy "req/s" "p99 ms" "CPU µs/req"
for scenario in $SCENARIOS; do
  if [ "$scenario" = churn ]; then churn; continue; fi
  if [ "$scenario" = memory ]; then memory; continue; fi
  if [ "$scenario" = h3 ]; then h3; continue; fi
  declare -A R=() P=() C=() LOAD=() CORE=()
  proxies=(zkgate haproxy nginx)
  for round in $(seq "$ROUNDS"); do
    # Each round starts with the next proxy (A B C, B C A, C A B …): the
    # machine's speed drifts over minutes, and no proxy always runs first.
    for i in 0 1 2; do
      proxy=${proxies[$(( (round - 1 + i) % 3 ))]}
      options=()
      case $scenario in
        small) url="http://127.0.0.1:${HTTP[$proxy]}/64" ;;
        large) url="http://127.0.0.1:${HTTP[$proxy]}/1m" ;;
        tcp) url="http://127.0.0.1:${TCP[$proxy]}/64" ;;
        tcp-large) url="http://127.0.0.1:${TCP[$proxy]}/1m" ;;
        tls-keepalive) url="https://127.0.0.1:${TLS[$proxy]}/64" ;;
        gzip) url="http://127.0.0.1:${GZ[$proxy]}/text"; options=(-H "Accept-Encoding: gzip") ;;
        # A new plain connection per request.
        new-conn) url="http://127.0.0.1:${HTTP[$proxy]}/64"; options=(-H "Connection: close") ;;
        h2c) url="http://127.0.0.1:${H2C[$proxy]}/64" ;;
        h2-tls) url="https://127.0.0.1:${H2TLS[$proxy]}/64" ;;
        # A new connection per request: one full handshake each (wrk does not resume sessions).
        tls-new) url="https://127.0.0.1:${TLS[$proxy]}/64"; options=(-H "Connection: close") ;;
        *) echo "compare.sh: unknown scenario $scenario" >&2; exit 1 ;;
      esac
      if [[ $scenario == h2* ]]; then
        read -r rps p99 cpu load_core proxy_core < <(run_h2 "$proxy" "$url")
      else
        read -r rps p99 cpu load_core proxy_core < <(run "$proxy" "$url" "${options[@]}")
      fi
      # Which core was the limit: the load core's and the proxy core's busy share.
      [ -z "${VERBOSE:-}" ] || printf "%-22s %-8s %10s %9s %12s   (round %s; cores busy: load %s%%, proxy %s%%)\n" \
        "$scenario" "$proxy" "$rps" "$p99" "$cpu" "$round" "$load_core" "$proxy_core" >&2
      R[$proxy]+="$rps "; P[$proxy]+="$p99 "; C[$proxy]+="$cpu "
      LOAD[$proxy]+="$load_core "; CORE[$proxy]+="$proxy_core "
    done
  done
  # Ratios are the medians of each round's ratios (runs a minute apart at
  # most), which the drift between rounds does not move.
  ratios() { # other -> "req/s ratio" "CPU ratio"
    paste -d' ' <(tr ' ' '\n' <<<"${R[zkgate]}" | grep .) <(tr ' ' '\n' <<<"${R[$1]}" | grep .) \
      <(tr ' ' '\n' <<<"${C[zkgate]}" | grep .) <(tr ' ' '\n' <<<"${C[$1]}" | grep .)
  }
  for proxy in zkgate haproxy nginx; do
    r=$(tr ' ' '\n' <<<"${R[$proxy]}" | grep . | median)
    p=$(tr ' ' '\n' <<<"${P[$proxy]}" | grep . | median)
    c=$(tr ' ' '\n' <<<"${C[$proxy]}" | grep . | median)
    l=$(tr ' ' '\n' <<<"${LOAD[$proxy]}" | grep . | median)
    k=$(tr ' ' '\n' <<<"${CORE[$proxy]}" | grep . | median)
    printf "%-22s %-8s %10.0f %9.2f %12.1f   cores busy: load %s%%, proxy %s%%\n" "$scenario" "$proxy" "$r" "$p" "$c" "$l" "$k"
  done
  # A row whose load core is ~100 % busy while its proxy's core is not was
  # limited by the load side: its req/s is what wrk and the origins could
  # drive, and its "req per CPU-second" is what the proxy's core could do.
  for other in haproxy nginx; do
    rr=$(ratios "$other" | awk '{print $1 / $2}' | median)
    cr=$(ratios "$other" | awk '{print $3 / $4}' | median)
    awk -v s="$scenario" -v o="$other" -v rr="$rr" -v cr="$cr" \
      'BEGIN { printf "%-22s zkgate/%-8s req/s ×%.2f   CPU/req ×%.2f   req per CPU-second ×%.2f\n", s, o, rr, cr, 1 / cr }'
  done
done
