#!/usr/bin/env bash
# bench/run.sh -- featherd alone: the request rates, CPU per request and memory figures the
# project tracks, measured the way docs/performance.md describes. Needs wrk and python3.
#
#   bench/run.sh [--workers N] [--dur SECONDS] [--reps N] [--conns N] [--idle N] [--only TEST...]
#
# Tests: small (1 KiB, keep-alive), close (1 KiB, a new connection per request), 64k, 1m,
# 100m (throughput), c10k (RSS per idle keep-alive connection). Each is run --reps times and
# the median is printed. CPU per request = user+sys of the featherd process / requests.
set -eu
cd "$(dirname "$0")/.."
WORKERS=1 DUR=5 REPS=3 CONNS=64 IDLE=10000 ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) WORKERS=$2; shift 2 ;;
        --dur) DUR=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --only) shift; ONLY="$*"; break ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "bench/run.sh needs wrk (apt-get install wrk)" >&2; exit 2; }
cargo build --release --workspace -q
BIN=$PWD/target/release/featherd
RUN=$(mktemp -d /tmp/featherd-bench.XXXXXX)
trap 'kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$RUN"' EXIT
mkdir -p "$RUN/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$RUN/www/index.html"
head -c 65536 /dev/urandom > "$RUN/www/64k.bin"
head -c 1048576 /dev/urandom > "$RUN/www/1m.bin"
head -c 104857600 /dev/zero > "$RUN/www/100m.bin"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cat > "$RUN/featherd.conf" <<CONF
server.document-root = "$RUN/www"
server.bind = "127.0.0.1"
server.port = $PORT
server.errorlog = "$RUN/error.log"
server.modules = ( "mod_indexfile", "mod_staticfile" )
server.max-worker = $WORKERS
server.max-keep-alive-requests = 0
server.max-keep-alive-idle = 300
server.max-fds = $(ulimit -n)
CONF
"$BIN" -D -f "$RUN/featherd.conf" -m "$PWD/target/release" &
PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.05; done

cpu_ticks() { awk '{print $14+$15}' "/proc/$PID/stat"; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$PID/status"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# run_wrk NAME PATH CONNS [wrk args...]: prints "NAME req/s MiB/s cpu_us_per_req" medians.
run_wrk() {
    local name=$1 path=$2 c=$3; shift 3
    local rps=() mbs=() cpu=()
    for _ in $(seq "$REPS"); do
        local t0 t1 out req
        t0=$(cpu_ticks)
        out=$(wrk -t1 -c"$c" -d"${DUR}s" "$@" "http://127.0.0.1:$PORT$path")
        t1=$(cpu_ticks)
        req=$(echo "$out" | awk '/requests in/{print $1}')
        rps+=("$(echo "$out" | awk '/Requests\/sec/{print $2}')")
        mbs+=("$(echo "$out" | awk '/Transfer\/sec/{v=$2; u=substr(v,length(v)-1); n=v+0; if (u=="GB") n*=1024; else if (u=="KB") n/=1024; print n}')")
        cpu+=("$(awk -v a="$t0" -v b="$t1" -v r="$req" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", (b-a)/hz*1e6/r}')")
    done
    printf '%-8s %12s req/s %10s MiB/s %8s us/req CPU\n' "$name" \
        "$(printf '%s\n' "${rps[@]}" | median)" "$(printf '%s\n' "${mbs[@]}" | median)" \
        "$(printf '%s\n' "${cpu[@]}" | median)"
}

want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
echo "featherd $("$BIN" -v | head -1), $WORKERS worker(s), wrk -t1, ${DUR}s x $REPS (median)"
want small && run_wrk small /index.html "$CONNS"
want close && run_wrk close /index.html "$CONNS" -H "Connection: close"
want 64k && run_wrk 64k /64k.bin "$CONNS"
want 1m && run_wrk 1m /1m.bin 16
want 100m && run_wrk 100m /100m.bin 4
if want c10k; then
    python3 - "$PORT" "$IDLE" "$PID" <<'PY'
import socket, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
before = rss()
held = []
req = b"GET /index.html HTTP/1.1\r\nHost: bench\r\n\r\n"
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    got = b""
    while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 1024:
        got += s.recv(65536)
    held.append(s)
time.sleep(0.5)
after = rss()
print(f"c10k     {n} idle keep-alive connections: RSS {before} -> {after} KiB, "
      f"{(after - before) * 1024 / n:.0f} B per connection")
PY
fi
