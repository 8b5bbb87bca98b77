#!/usr/bin/env bash
# Sockets shared the way the kernel shares them (issue 14), on one host:
# real programs in their default architecture, each run twice -- on the
# kernel (no preload: proves the test) and under `offload` with a private
# same-host offloadd -- and every fact printed as its own PASS/FAIL line,
# prefixed "kernel:" or "offload:".
#
#   semantics   semantics_prog sharing: fork, exec, SCM_RIGHTS, pre-fork,
#               threads, a listener re-created on its port (C)
#   python      pre-fork (listen in the parent, 2 and 4 children accept),
#               socketserver.ForkingTCPServer (2000 connections each),
#               subprocess.Popen(pass_fds=...) exec handoff, SCM_RIGHTS of a
#               connection and a listener (share_checks.py)
#   frames      8 threads x 2000 framed messages on one TCP socket and on one
#               UDP socket (2 receiving threads), every frame verified
#   socat       socat TCP-LISTEN:...,fork EXEC:/bin/cat,nofork (inetd style)
#   nginx       nginx with 2 and 4 workers (master_process on, listen in the
#               master, accept in the workers; otherwise its defaults but
#               `daemon off` so we own its pid): curl of 1 MiB x 10 with
#               checksum, ab -n 20000 -c 50, ab -k, h2load --h1 -n 50000 -c 50;
#               offloaded client and (offload run) kernel client; offloadctl
#               stats showing the workers' accepted connections offloaded
#   ipv6        nginx `listen P; listen [::]:P`, redis --bind "::1 127.0.0.1",
#               iperf3 -s (dual-stack ::): offloaded clients over IPv4 and
#               IPv6; stats show the listeners of both families offloaded
#   postgres    postmaster + pgbench -i, pgbench -c 8 -T 10, pgbench -C
#               (a fork per connection) on a private data dir and port
#   restart     (offload run only) a process started before offloadd restarts
#               gets its new sockets offloaded again
#
# Usage: samehost_sharing_test.sh OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD
#                                 SEMANTICS_PROG FRAMES SHARE_CHECKS
# Env: SHARING_CASES (default "semantics python frames socat nginx ipv6
# postgres restart"), SHARING_MODES (default "kernel offload"). Root (nginx's default
# user switch, PostgreSQL as the postgres user); reports SKIP otherwise.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

if [[ $# -ne 7 ]]; then
  echo "usage: $0 OFFLOADD OFFLOADCTL OFFLOAD LIBOFFLOAD SEMANTICS_PROG FRAMES SHARE_CHECKS" >&2
  exit 2
fi
OFFLOADD=$(realpath "$1")
OFFLOADCTL=$(realpath "$2")
OFFLOAD_SRC=$(realpath "$3")
LIBOFFLOAD_SRC=$(realpath "$4")
SEMANTICS=$(realpath "$5")
FRAMES=$(realpath "$6")
SHARE=$(realpath "$7")
CASES=${SHARING_CASES:-semantics python frames socat nginx ipv6 postgres restart}
MODES=${SHARING_MODES:-kernel offload}

# pass/fail/skip/note, junit_write, bg, wait_file, stop_pid, wait_listen,
# ctl, start_daemon, sock_rows (one harness for every integration script).
source "$(dirname "$0")/../lib/harness.sh"
JUNIT_SUITE=samehost_sharing
require_root "$JUNIT_SUITE" "needs root (nginx's worker user switch, PostgreSQL as user postgres)"
for tool in jq python3 ss; do
  command -v "$tool" >/dev/null || { echo "FAIL: harness needs $tool"; exit 1; }
done

NS_A="" NS_B=""  # no namespaces: cleanup's ip netns del is a no-op
WORK=$(mktemp -d /tmp/offload-sharing.XXXXXX)
chmod 755 "$WORK"
RUN=$WORK/run
# Every server runs in a session of its own (setsid): stop_group kills
# that process group (workers, forked children), never anything else.
groups=()
stop_group() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1  # poll interval
  done
  kill -KILL -- "-$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
cleanup_all() {
  local g
  for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
  junit_write "$JUNIT_SUITE"  # one JUnit case per check for bazel
  cleanup
}
trap cleanup_all EXIT

# The library and launcher where unprivileged users (nginx workers,
# postgres) can read them.
mkdir -p "$WORK/bin"
cp "$LIBOFFLOAD_SRC" "$WORK/bin/liboffload.so"
cp "$OFFLOAD_SRC" "$WORK/bin/offload"
chmod 755 "$WORK/bin" "$WORK/bin/offload" "$WORK/bin/liboffload.so"

if [[ " $MODES " == *" offload "* ]]; then
  start_daemon "" "$RUN" "" || { fail "offloadd did not start"; echo "$passes passed, $failures failed"; exit 1; }
  chmod 755 "$RUN"
fi
next_port=$((10000 + RANDOM % 20000))
# port: the next port nobody on this host listens on (nginx, socat and
# PostgreSQL need a number; everything else binds port 0).
port() {
  local i
  for ((i = 0; i < 100; i++)); do
    next_port=$((next_port + 1))
    [[ -z $(ss -Htan "sport = :$next_port" 2>/dev/null) ]] && break
  done
  PORT=$next_port
}

# set_mode MODE: RUNP (command prefix for a program of this mode) and the
# EXPECT_OFFLOAD its checks assert.
set_mode() {
  MODE=$1
  if [[ $MODE == offload ]]; then
    RUNP=(env OFFLOAD_RUN_DIR="$RUN" OFFLOAD_LIBRARY="$WORK/bin/liboffload.so" EXPECT_OFFLOAD=1
          "$WORK/bin/offload" --)
  else
    RUNP=(env EXPECT_OFFLOAD=0)
  fi
  KERNP=(env EXPECT_OFFLOAD=0)
}

# relay PREFIX FILE RC: turns a program's "PASS x"/"FAIL x" lines into
# pass/fail; a non-zero exit with no FAIL line is a failure of its own.
relay() {
  local prefix=$1 file=$2 rc=$3 line nfail=0
  while IFS= read -r line; do
    case $line in
      "FAIL ["*) note "$line" ;;  # semantics_prog's diagnostic, not a check
      "PASS "*) pass "$prefix: ${line#PASS }" ;;
      "FAIL "*) fail "$prefix: ${line#FAIL }"; nfail=$((nfail + 1)) ;;
    esac
  done < <(grep -a -E '^(PASS|FAIL) ' "$file")
  if [[ $rc -ne 0 && $nfail -eq 0 ]]; then
    fail "$prefix: exited $rc without a FAIL line: $(tail -3 "$file" | tr '\n' ' ')"
  fi
}

# ------------------------------------------------------------------ cases

case_semantics() {
  local log fam
  # inet: IPv4; dual: a dual-stack AF_INET6 listener with IPv4 connectors;
  # inet6: AF_INET6 on ::1 (issue 18).
  for fam in inet dual inet6; do
    log=$WORK/semantics-$MODE-$fam.log
    timeout -k 5 600 env SEMANTICS_FAMILY=$fam "${RUNP[@]}" "$SEMANTICS" sharing >"$log" 2>&1
    relay "$MODE: semantics_prog ($fam)" "$log" $?
    grep -a '^\[' "$log" | head -10 | sed 's/^/     /'
  done
}

case_python() {
  local args log
  for args in "prefork 2 2000" "prefork 4 2000" "forking 2000" "passfds 20" "scm"; do
    log=$WORK/py-$MODE-${args// /_}.log
    timeout -k 5 300 "${RUNP[@]}" python3 "$SHARE" $args >"$log" 2>&1
    relay "$MODE: python" "$log" $?
  done
}

# frames_run PROTO SENDER_PREFIX RECEIVER_PREFIX LABEL [RECV_IP SEND_TO ...]
frames_case() {
  local proto=$1 threads=8 msgs=2000 expect=16000 pf=$WORK/frames-$MODE-$1.port
  local rlog=$WORK/frames-$MODE-$proto-recv.log slog=$WORK/frames-$MODE-$proto-send.log
  rm -f "$pf"
  bg "$rlog" timeout -k 5 90 "${RUNP[@]}" "$FRAMES" recv "$proto" --bind 127.0.0.1 --port-file "$pf" \
    --expect $expect --recv-threads $([[ $proto == udp ]] && echo 2 || echo 1) --timeout 60
  local rpid=$BG_PID
  if ! wait_file "$pf"; then
    fail "$MODE: frames $proto: receiver did not start: $(tail -3 "$rlog")"
    stop_pid "$rpid"
    return
  fi
  timeout -k 5 90 "${RUNP[@]}" "$FRAMES" send "$proto" --to 127.0.0.1 --port "$(cat "$pf")" \
    --threads $threads --msgs $msgs --timeout 60 >"$slog" 2>&1
  local src=$?
  wait "$rpid"
  local rrc=$?
  local summary
  summary=$(grep -a -E '^(tcp|udp) ' "$rlog" | tail -1)
  if [[ $src -eq 0 ]]; then
    pass "$MODE: frames $proto: $threads threads x $msgs sends on one socket all succeeded ($(tail -1 "$slog"))"
  else
    fail "$MODE: frames $proto: sender exited $src: $(tr '\n' ' ' <"$slog" | cut -c1-300)"
  fi
  if [[ $proto == tcp ]]; then
    if [[ $rrc -eq 0 ]]; then
      pass "$MODE: frames tcp: every frame intact and in per-thread order ($summary)"
    else
      fail "$MODE: frames tcp: receiver exited $rrc: ${summary:-no summary} $(grep -a -v '^tcp ' "$rlog" | head -3 | tr '\n' ' ')"
    fi
  else
    local ok dropped
    ok=$(grep -o ' ok=[0-9]*' <<<"$summary" | cut -d= -f2)
    dropped=$(grep -o 'dropped=[0-9-]*' <<<"$summary" | cut -d= -f2)
    if [[ $rrc -eq 0 && -n $summary ]]; then
      pass "$MODE: frames udp: no corrupt or duplicated datagram ($summary)"
    else
      fail "$MODE: frames udp: receiver exited $rrc: ${summary:-no summary} $(grep -a -v '^udp ' "$rlog" | head -3 | tr '\n' ' ')"
    fi
    # Drops are not corruption: reported apart, with a generous floor.
    if [[ -n $ok ]] && ((ok * 100 >= expect * 95)); then
      pass "$MODE: frames udp: at least 95 % delivered ($ok of $expect, dropped ${dropped:-?})"
    else
      fail "$MODE: frames udp: fewer than 95 % delivered (${ok:-?} of $expect)"
    fi
  fi
}

case_frames() {
  frames_case tcp
  frames_case udp
}

case_socat() {
  if ! command -v socat >/dev/null; then
    skip "$MODE: socat not installed (tools/bootstrap.sh)"
    return
  fi
  port
  bg "$WORK/socat-$MODE.log" setsid "${RUNP[@]}" socat "TCP-LISTEN:$PORT,bind=127.0.0.1,fork,reuseaddr" \
    EXEC:/bin/cat,nofork
  local spid=$BG_PID
  groups+=("$spid")
  if ! wait_listen "" "$PORT"; then
    fail "$MODE: socat did not listen: $(tail -3 "$WORK/socat-$MODE.log")"
    stop_group "$spid"
    return
  fi
  local log=$WORK/socat-client-$MODE.log
  timeout -k 5 120 "${RUNP[@]}" python3 "$SHARE" echo 127.0.0.1 "$PORT" 20 "socat EXEC:/bin/cat,nofork" \
    >"$log" 2>&1
  relay "$MODE: socat" "$log" $?
  stop_group "$spid"
}

# ---- nginx

# http_checks LABEL CLIENT_PREFIX... : curl, ab, ab -k, h2load against
# $NGX_PORT, each a PASS/FAIL line.
http_checks() {
  local label=$1
  shift
  local -a cp=("$@")
  local url=http://127.0.0.1:$NGX_PORT i good=0 bad=0 log
  for ((i = 0; i < 10 && bad < 2; i++)); do
    rm -f "$NGX_DIR/got"
    if timeout -k 2 15 "${cp[@]}" curl -s --max-time 10 -o "$NGX_DIR/got" "$url/big.bin" &&
       [[ $(sha256sum <"$NGX_DIR/got" | cut -d' ' -f1) == "$NGX_SUM" ]]; then
      good=$((good + 1))
    else
      bad=$((bad + 1))
    fi
  done
  if ((good == 10)); then
    pass "$label: curl 1 MiB x 10, checksums match"
  else
    fail "$label: curl 1 MiB: $good good, $bad failed (stopped after 2 failures)"
  fi
  local kopt
  for kopt in "" "-k"; do
    log=$WORK/ab-$MODE-$NGX_WORKERS-${label//[^a-z]/}$kopt.log
    timeout -k 5 150 "${cp[@]}" ab $kopt -n 20000 -c 50 -s 5 -r "$url/small.html" >"$log" 2>&1
    local rc=$? complete failed non2xx
    complete=$(awk '/^Complete requests:/ {print $3}' "$log")
    failed=$(awk '/^Failed requests:/ {print $3}' "$log")
    non2xx=$(awk '/^Non-2xx responses:/ {print $3}' "$log")
    if [[ $rc -eq 0 && ${complete:-0} -eq 20000 && ${failed:-1} -eq 0 && -z $non2xx ]]; then
      pass "$label: ab ${kopt:+$kopt }-n 20000 -c 50: 20000 complete, 0 failed ($(awk '/^Requests per second/ {print $4}' "$log") req/s)"
    else
      fail "$label: ab ${kopt:+$kopt }-n 20000 -c 50: rc $rc, complete ${complete:-?}, failed ${failed:-?}, non-2xx ${non2xx:-0} $(grep -a -i 'timeout\|error\|apr_' "$log" | head -2 | tr '\n' ' ')"
    fi
  done
  log=$WORK/h2load-$MODE-$NGX_WORKERS-${label//[^a-z]/}.log
  timeout -k 5 150 "${cp[@]}" h2load --h1 -n 50000 -c 50 -N 5s "$url/small.html" >"$log" 2>&1
  local rc=$? succeeded
  succeeded=$(grep -a -o '[0-9]* succeeded' "$log" | grep -o '[0-9]*')
  if [[ $rc -eq 0 && ${succeeded:-0} -eq 50000 ]]; then
    pass "$label: h2load --h1 -n 50000 -c 50: 50000 succeeded"
  else
    fail "$label: h2load --h1 -n 50000 -c 50: rc $rc: $(grep -a '^requests:' "$log" | head -1)"
  fi
}

# nginx_stats LABEL: K held keep-alive connections from an offloaded client
# appear in `offloadctl stats -v` as offloaded sockets of the workers.
nginx_stats() {
  local label=$1 k=8 log=$WORK/hold-$MODE-$NGX_WORKERS.log i
  bg "$log" timeout -k 5 150 "${RUNP[@]}" python3 "$SHARE" hold 127.0.0.1 "$NGX_PORT" $k /small.html
  local hpid=$BG_PID
  for ((i = 0; i < 400; i++)); do  # up to 40 s: 8 connections x 3 s, plus start-up
    grep -q "^held " "$log" && break
    kill -0 "$hpid" 2>/dev/null || break
    sleep 0.1  # poll interval
  done
  local held
  held=$(awk '/^held / {print $2}' "$log")
  if [[ -z $held ]]; then
    fail "$label: stats: the keep-alive client failed: $(tail -2 "$log" | tr '\n' ' ')"
    stop_pid "$hpid"
    return
  fi
  local rows workers good total
  rows=$(sock_rows "$RUN")
  workers=$(awk -v m="$NGX_PID" '$2 == "nginx" && $1 != m {print $1}' <<<"$rows" | sort -u | paste -sd, -)
  total=$(awk -v m="$NGX_PID" '$2 == "nginx" && $1 != m && $4 == "tcp" && $5 != "listen"' <<<"$rows" | wc -l)
  good=$(awk -v m="$NGX_PID" '$2 == "nginx" && $1 != m && $4 == "tcp" && $5 != "listen" && $6 == "true"' <<<"$rows" | wc -l)
  # Each held connection is one accepted socket of a worker.
  if ((held == k && good >= k)); then
    pass "$label: offloadctl stats: $good accepted connections of workers [$workers] offloaded"
  else
    fail "$label: offloadctl stats: $held of $k keep-alive connections opened; $good of $total worker connections offloaded (worker pids in stats: [$workers])"
    note "nginx rows: $(awk '$2 == "nginx"' <<<"$rows" | head -12 | tr '\n' ';')"
  fi
  stop_pid "$hpid"
}

nginx_case() {
  NGX_WORKERS=$1
  port
  NGX_PORT=$PORT
  NGX_DIR=$WORK/nginx-$MODE-$NGX_WORKERS
  mkdir -p "$NGX_DIR/www"
  head -c 1048576 /dev/urandom >"$NGX_DIR/www/big.bin"
  echo "hello from nginx" >"$NGX_DIR/www/small.html"
  NGX_SUM=$(sha256sum <"$NGX_DIR/www/big.bin" | cut -d' ' -f1)
  cat >"$NGX_DIR/nginx.conf" <<EOF
# nginx defaults (master_process on; the master listens, the workers accept;
# worker user nobody) except: daemon off (the test owns the master's pid),
# private paths, a status-only access log.
worker_processes $NGX_WORKERS;
daemon off;
pid $NGX_DIR/nginx.pid;
error_log $NGX_DIR/error.log;
events { }
http {
  client_body_temp_path $NGX_DIR/body;
  proxy_temp_path $NGX_DIR/proxy;
  fastcgi_temp_path $NGX_DIR/fastcgi;
  uwsgi_temp_path $NGX_DIR/uwsgi;
  scgi_temp_path $NGX_DIR/scgi;
  log_format st '\$status';
  access_log $NGX_DIR/access.log st;
  server { listen 127.0.0.1:$NGX_PORT; root $NGX_DIR/www; }
}
EOF
  chmod -R a+rX "$NGX_DIR"
  bg "$WORK/nginx-$MODE-$NGX_WORKERS.log" setsid "${RUNP[@]}" nginx -p "$NGX_DIR" -e "$NGX_DIR/error.log" \
    -c "$NGX_DIR/nginx.conf"
  NGX_PID=$BG_PID
  groups+=("$NGX_PID")
  local i n=0
  for ((i = 0; i < 100; i++)); do
    n=$(pgrep -c -P "$NGX_PID" 2>/dev/null)
    n=${n:-0}
    ((n >= NGX_WORKERS)) && wait_listen "" "$NGX_PORT" && break
    sleep 0.1  # poll interval
  done
  if ((n < NGX_WORKERS)) || ! wait_listen "" "$NGX_PORT"; then
    fail "$MODE: nginx $NGX_WORKERS workers did not start: $(tail -3 "$NGX_DIR/error.log" "$WORK/nginx-$MODE-$NGX_WORKERS.log" 2>/dev/null | tr '\n' ' ')"
    stop_group "$NGX_PID"
    return
  fi
  if [[ $MODE == offload ]]; then
    http_checks "$MODE: nginx $NGX_WORKERS workers, offloaded client" "${RUNP[@]}"
    nginx_stats "$MODE: nginx $NGX_WORKERS workers"
    http_checks "$MODE: nginx $NGX_WORKERS workers, kernel client" env
  else
    http_checks "$MODE: nginx $NGX_WORKERS workers" env
  fi
  local non200
  non200=$(grep -vc '^200$' "$NGX_DIR/access.log" 2>/dev/null)
  [[ ${non200:-0} -eq 0 ]] || note "nginx logged $non200 non-200 responses"
  stop_group "$NGX_PID"
}

case_nginx() {
  nginx_case 2
  nginx_case 4
}

# ---- PostgreSQL

case_postgres() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [[ -z $bindir ]] || ! command -v pgbench >/dev/null || ! id postgres >/dev/null 2>&1; then
    skip "$MODE: PostgreSQL (postgresql, pgbench, user postgres) not installed (tools/bootstrap.sh)"
    return
  fi
  port
  local w=$WORK/pg-$MODE AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  mkdir -p "$w"
  chown postgres: "$w"
  if ! "${AS_PG[@]}" "$bindir/initdb" -D "$w/data" -A trust -U postgres >"$w/initdb.log" 2>&1; then
    fail "$MODE: postgres initdb failed: $(tail -3 "$w/initdb.log" | tr '\n' ' ')"
    return
  fi
  bg "$WORK/postgres-$MODE.log" setsid "${AS_PG[@]}" "${RUNP[@]}" "$bindir/postgres" -D "$w/data" \
    -p "$PORT" -k "$w" -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50
  local pg=$BG_PID i
  groups+=("$pg")
  for ((i = 0; i < 100; i++)); do
    pg_isready -q -h 127.0.0.1 -p "$PORT" -t 1 && break
    kill -0 "$pg" 2>/dev/null || break
    sleep 0.1  # poll interval
  done
  if ! pg_isready -q -h 127.0.0.1 -p "$PORT" -t 1; then
    fail "$MODE: postgres did not answer: $(tail -3 "$WORK/postgres-$MODE.log" | tr '\n' ' ')"
    stop_group "$pg"
    return
  fi
  local PGB=(timeout -k 5 120 "${RUNP[@]}" pgbench -h 127.0.0.1 -p "$PORT" -U postgres)
  if "${PGB[@]}" -i -s 1 postgres >"$w/init.log" 2>&1; then
    pass "$MODE: postgres: pgbench -i (schema and 100000 rows loaded)"
  else
    fail "$MODE: postgres: pgbench -i failed: $(tail -3 "$w/init.log" | tr '\n' ' ')"
  fi
  local opts label
  for opts in "-c 8 -j 2 -T 10" "-C -c 4 -j 2 -T 5"; do
    label="pgbench $opts"
    local log=$w/bench-${opts//[^a-zA-Z0-9]/}.log
    "${PGB[@]}" $opts postgres >"$log" 2>&1 &
    local bpid=$!
    pids+=("$bpid")
    # Meanwhile (offload): a backend's connection shows offloaded in stats.
    local seen=""
    while kill -0 "$bpid" 2>/dev/null; do
      if [[ $MODE == offload && -z $seen ]]; then
        seen=$(sock_rows "$RUN" | awk -v m="$pg" '$2 == "postgres" && $1 != m && $4 == "tcp" && $5 != "listen" && $6 == "true" {print $1}' | head -1)
      fi
      sleep 0.2  # poll interval; bounded by pgbench -T and its timeout
    done
    wait "$bpid"
    local rc=$? tx failed
    tx=$(awk -F': ' '/number of transactions actually processed/ {print $2}' "$log" | cut -d/ -f1)
    failed=$(awk -F': ' '/number of failed transactions/ {print $2}' "$log" | cut -d' ' -f1)
    if [[ $rc -eq 0 && ${tx:-0} -gt 0 && ${failed:-0} -eq 0 ]] && ! grep -aq -i 'error\|abort' "$log"; then
      pass "$MODE: postgres: $label: $tx transactions, 0 failed ($(grep -a -o 'tps = [0-9.]*' "$log" | tail -1))"
    else
      fail "$MODE: postgres: $label: rc $rc, transactions ${tx:-?}, failed ${failed:-?}: $(grep -a -i 'error\|abort\|fatal' "$log" | head -2 | tr '\n' ' ')"
    fi
    if [[ $MODE == offload && $opts == "-c 8"* ]]; then
      if [[ -n $seen ]]; then
        pass "$MODE: postgres: offloadctl stats shows a backend's connection offloaded (pid $seen)"
      else
        fail "$MODE: postgres: offloadctl stats showed no offloaded backend connection"
      fi
    fi
  done
  kill -INT "$pg" 2>/dev/null  # fast shutdown
  stop_group "$pg"
}

# ---- offloadd restarts under a running process (offload only)

case_restart() {
  [[ $MODE == offload ]] || return 0
  local d=$WORK/reattach log=$WORK/reattach.log i
  mkdir -p "$d"
  bg "$log" timeout -k 5 300 "${RUNP[@]}" python3 "$SHARE" reattach "$d"
  local rpid=$BG_PID
  touch "$d/go1"
  for ((i = 0; i < 100; i++)); do grep -q '^pair 1' "$log" && break; sleep 0.1; done  # poll
  if grep -q '^pair 1 offloaded=1 data=1' "$log"; then
    pass "$MODE: restart: a new pair is offloaded before offloadd restarts"
  else
    fail "$MODE: restart: before the restart: $(tail -2 "$log" | tr '\n' ' ')"
  fi
  stop_pid "$DAEMON_PID"
  if start_daemon "" "$RUN" ""; then
    chmod 755 "$RUN"
    pass "$MODE: restart: offloadd restarted"
  else
    fail "$MODE: restart: offloadd did not restart"
    stop_pid "$rpid"
    return
  fi
  touch "$d/go2"
  for ((i = 0; i < 100; i++)); do grep -q '^pair 2' "$log" && break; sleep 0.1; done  # poll
  if grep -q '^pair 2 offloaded=1 data=1' "$log"; then
    pass "$MODE: restart: the process re-attached: its new pair is offloaded"
  else
    fail "$MODE: restart: after the restart the process's new sockets: $(grep '^pair 2' "$log" || tail -2 "$log" | tr '\n' ' ') (want offloaded=1 data=1)"
  fi
  local listed ppid
  ppid=$(grep -o 'pid=[0-9]*' "$log" | head -1 | cut -d= -f2)  # python's own pid
  listed=$(ctl "$RUN" --json stats -p "${ppid:-0}" 2>/dev/null | jq -r '[(.processes // [])[] | .session.pid] | length' 2>/dev/null)
  if [[ ${listed:-0} -ge 1 ]]; then
    pass "$MODE: restart: offloadctl stats lists the process again"
  else
    fail "$MODE: restart: offloadctl stats -p ${ppid:-?} lists no session after the restart"
  fi
  stop_pid "$rpid"
}

# ---- ipv6 (issue 18): real servers listening on ::, as their defaults do
# offloaded_listens PROG: the families of PROG's offloaded listening
# sockets ("ipv4,ipv6").
offloaded_listens() {
  ctl "$RUN" --json stats -v 2>/dev/null | jq -r --arg p "$1" '
    (.processes // [])[] | select(.session.program == $p) | (.sockets // [])[] |
    select(.state == "listen" and .offloaded) | .family' 2>/dev/null | sort -u | paste -sd, -
}
# expect_listens LABEL PROG WANT: in the offload run, PROG's offloaded
# listeners are of the families WANT ("ipv4,ipv6" or "ipv6").
expect_listens() {
  [[ $MODE == offload ]] || return 0
  local fams
  fams=$(offloaded_listens "$2")
  if [[ $fams == "$3" ]]; then
    pass "$MODE: $1: its listeners ($3) are offloaded"
  else
    fail "$MODE: $1: offloaded listeners by family: '$fams' (want $3)"
  fi
}
case_ipv6() {
  local i n pid body url h
  # nginx: `listen P; listen [::]:P;` (the second v6-only, nginx's default),
  # master and 2 workers; offloaded curl over IPv4 and IPv6.
  port
  local np=$PORT d=$WORK/nginx6-$MODE
  mkdir -p "$d/www"
  echo "hello over both families" >"$d/www/i.html"
  printf '%s\n' "worker_processes 2;" "daemon off;" "pid $d/nginx.pid;" "error_log $d/error.log;" \
    "events { }" "http {" "  client_body_temp_path $d/body;" "  proxy_temp_path $d/proxy;" \
    "  fastcgi_temp_path $d/fastcgi;" "  uwsgi_temp_path $d/uwsgi;" "  scgi_temp_path $d/scgi;" \
    "  access_log off;" "  server { listen $np; listen [::]:$np; root $d/www; }" "}" \
    >"$d/nginx.conf"
  chmod -R a+rX "$d"
  bg "$WORK/nginx6-$MODE.log" setsid "${RUNP[@]}" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
  pid=$BG_PID
  groups+=("$pid")
  for ((i = 0; i < 100; i++)); do
    n=$(pgrep -c -P "$pid" 2>/dev/null)
    ((${n:-0} >= 2)) && wait_listen "" "$np" && break
    sleep 0.1  # poll interval
  done
  for url in "http://127.0.0.1:$np/i.html" "http://[::1]:$np/i.html"; do
    body=$("${RUNP[@]}" curl -s --max-time 10 "$url" 2>/dev/null)
    if [[ $body == "hello over both families" ]]; then
      pass "$MODE: nginx listen $np + [::]:$np: $url answered"
    else
      fail "$MODE: nginx listen $np + [::]:$np: $url gave '${body:0:80}' ($(tail -2 "$d/error.log" 2>/dev/null | tr '\n' ' '))"
    fi
  done
  expect_listens "nginx listen $np + [::]:$np" nginx "ipv4,ipv6"
  stop_group "$pid"
  # redis-server --bind "::1 127.0.0.1".
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    port
    local rp=$PORT
    bg "$WORK/redis6-$MODE.log" setsid "${RUNP[@]}" redis-server --port "$rp" --bind "::1 127.0.0.1" \
      --save "" --appendonly no --dir "$WORK"
    pid=$BG_PID
    groups+=("$pid")
    wait_listen "" "$rp"
    for h in ::1 127.0.0.1; do
      body=$("${RUNP[@]}" redis-cli -h "$h" -p "$rp" SET "k$h" "v$h" 2>&1)$("${RUNP[@]}" redis-cli -h "$h" -p "$rp" GET "k$h" 2>&1)
      if [[ $body == "OKv$h" ]]; then
        pass "$MODE: redis --bind '::1 127.0.0.1': SET/GET over $h"
      else
        fail "$MODE: redis --bind '::1 127.0.0.1': over $h got '${body:0:80}'"
      fi
    done
    expect_listens "redis --bind '::1 127.0.0.1'" redis-server "ipv4,ipv6"
    stop_group "$pid"
  else
    skip "$MODE: redis: redis-server/redis-cli not installed"
  fi
  # iperf3 -s: one dual-stack :: listener; offloaded clients over ::1 and
  # over IPv4.
  if command -v iperf3 >/dev/null; then
    port
    local ip3=$PORT
    bg "$WORK/iperf6-$MODE.log" setsid "${RUNP[@]}" iperf3 -s -p "$ip3"
    pid=$BG_PID
    groups+=("$pid")
    wait_listen "" "$ip3"
    expect_listens "iperf3 -s (dual-stack ::)" iperf3 "ipv6"
    for h in ::1 127.0.0.1; do
      body=$(timeout -k 5 30 "${RUNP[@]}" iperf3 -c "$h" -p "$ip3" -t 1 -J 2>/dev/null |
        jq -r '.end.sum_received.bytes // 0' 2>/dev/null)
      if [[ ${body:-0} -gt 0 ]]; then
        pass "$MODE: iperf3 -s (dual-stack): a client over $h moved $body bytes"
      else
        fail "$MODE: iperf3 -s (dual-stack): a client over $h moved nothing ('$body')"
      fi
    done
    stop_group "$pid"
  else
    skip "$MODE: iperf3: not installed"
  fi
}

# ------------------------------------------------------------------- main
for m in $MODES; do
  set_mode "$m"
  echo "== $MODE"
  for c in $CASES; do
    echo "-- $MODE: $c"
    "case_$c"
  done
done

echo "$passes passed, $failures failed, $skips skipped"
[[ $failures -eq 0 ]]
