#!/usr/bin/env bash
# A private RabbitMQ node with a TLS listener, for tests and the local quickstart.
#
#   scripts/rmq-node.sh start   DIR   make certificates, pick free loopback ports, start the node
#                                     and wait until it serves; writes DIR/env (see below)
#   scripts/rmq-node.sh stop    DIR   stop the node and its epmd (only the processes it started)
#   scripts/rmq-node.sh restart DIR   stop and start again on the same ports and data
#   scripts/rmq-node.sh ctl DIR ARGS  run rabbitmqctl ARGS against the node
#
# Everything lives under DIR: config, data, logs, certificates, its own epmd. Nothing is
# written to /etc/rabbitmq or /var/lib/rabbitmq, and no system service is touched.
#
# RMQ_DEFINITIONS=FILE: load these users / vhosts / permissions instead of the test ones.
# RMQ_JOIN=DIR0: the new node joins the cluster of the node in DIR0 (started before): it
# takes DIR0's certificates, Erlang cookie, definitions and epmd, and joins after its first
# start (for a 3-node cluster on loopback: start DIR0, then RMQ_JOIN=DIR0 for DIR1 and DIR2;
# stop the joined nodes before DIR0, whose epmd they use).
#
# DIR/env exports: AMQP_URL (plain, loopback), AMQPS_URL, AMQP_CA, AMQP_OTHER_CA (a CA the node
# does not trust), AMQP_CLIENT_CERT / AMQP_CLIENT_KEY / AMQP_CLIENT_USER (a certificate-only
# user, "tls-worker", whose permissions are the hardened worker's on namespace "hard"),
# RMQ_NODE_DIR, RMQ_CTL.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RMQ_BIN=/usr/lib/rabbitmq/bin
START_TIMEOUT=${RMQ_START_TIMEOUT:-90}

die() { echo "rmq-node.sh: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: $0 start|stop|restart|kill DIR | ctl DIR ARGS..."
cmd=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)

require() {
  [ -x "$RMQ_BIN/rabbitmq-server" ] || die "RabbitMQ is not installed: apt-get install rabbitmq-server"
  command -v epmd >/dev/null || [ -x /usr/lib/erlang/bin/epmd ] || die "epmd is missing: apt-get install rabbitmq-server (erlang-base)"
  command -v openssl >/dev/null || die "openssl is missing: apt-get install openssl"
  command -v python3 >/dev/null || die "python3 is missing: apt-get install python3"
}

free_ports() { # N -> N free loopback ports
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

node_env() {
  # shellcheck disable=SC1091
  . "$dir/ports"
  export HOME="$dir/home"
  export RABBITMQ_NODENAME="rmq-$NODE_TAG@localhost"
  export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_DIST_PORT=$DIST_PORT ERL_EPMD_PORT=$EPMD_PORT
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_DIST_PORT_MIN=$CTL_PORT RABBITMQ_CTL_DIST_PORT_MAX=$((CTL_PORT + 10))
  export PATH="$RMQ_BIN:/usr/lib/erlang/bin:$PATH"
}

# RabbitMQ's password hash: base64(salt ++ sha256(salt ++ password)).
password_hash() {
  python3 - "$1" <<'PY'
import base64, hashlib, os, sys
salt = os.urandom(4)
print(base64.b64encode(salt + hashlib.sha256(salt + sys.argv[1].encode()).digest()).decode())
PY
}

prepare() {
  mkdir -p "$dir/home" "$dir/log" "$dir/mnesia"
  read -r AMQP_PORT AMQPS_PORT DIST_PORT EPMD_PORT CTL_PORT <<<"$(free_ports 5)"
  local join_node="" own_epmd=1
  if [ -n "${RMQ_JOIN:-}" ]; then
    [ -f "$RMQ_JOIN/ports" ] || die "RMQ_JOIN=$RMQ_JOIN holds no node"
    # shellcheck disable=SC1091
    EPMD_PORT=$(. "$RMQ_JOIN/ports" && echo "$EPMD_PORT")
    join_node="rmq-$(. "$RMQ_JOIN/ports" && echo "$NODE_TAG")@localhost"
    own_epmd=0
  fi
  cat >"$dir/ports" <<EOT
AMQP_PORT=$AMQP_PORT
AMQPS_PORT=$AMQPS_PORT
DIST_PORT=$DIST_PORT
EPMD_PORT=$EPMD_PORT
CTL_PORT=$CTL_PORT
NODE_TAG=$$
JOIN_NODE=$join_node
OWN_EPMD=$own_epmd
EOT
  local certs="$dir/certs"
  if [ -n "$join_node" ]; then
    cp -r "$RMQ_JOIN/certs" "$certs"
    cp "$RMQ_JOIN/home/.erlang.cookie" "$dir/home/.erlang.cookie"
    chmod 400 "$dir/home/.erlang.cookie"
  fi
  if [ -z "$join_node" ]; then
    "$ROOT/certs/mkcerts.sh" ca "$certs" >/dev/null
    "$ROOT/certs/mkcerts.sh" host "$certs" server localhost 127.0.0.1 >/dev/null
    "$ROOT/certs/mkcerts.sh" client "$certs" tls-worker >/dev/null
    for user in hw1 hp1 hp2; do
      "$ROOT/certs/mkcerts.sh" client "$certs" "$user" >/dev/null
    done
    CA_NAME=other-ca "$ROOT/certs/mkcerts.sh" ca "$certs/other" >/dev/null
    "$ROOT/certs/mkcerts.sh" host "$certs/other" server localhost 127.0.0.1 >/dev/null
    # A client certificate no site trusts (the misuse tests present it).
    "$ROOT/certs/mkcerts.sh" client "$certs/other" stranger >/dev/null
    chmod 644 "$certs"/*.key
  fi
  : >"$dir/rabbitmq-env.conf"
  echo '[rabbitmq_auth_mechanism_ssl].' >"$dir/enabled_plugins"
  cat >"$dir/rabbitmq.conf" <<EOT
listeners.tcp.1 = 127.0.0.1:$AMQP_PORT
listeners.ssl.1 = 127.0.0.1:$AMQPS_PORT
ssl_options.cacertfile = $certs/ca.crt
ssl_options.certfile = $certs/server.crt
ssl_options.keyfile = $certs/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
auth_mechanisms.1 = EXTERNAL
auth_mechanisms.2 = PLAIN
auth_mechanisms.3 = AMQPLAIN
ssl_cert_login_from = common_name
loopback_users = none
load_definitions = $dir/definitions.json
disk_free_limit.absolute = 50MB
log.file = rabbit.log
log.file.level = info
log.console = false
EOT
  if [ -n "$join_node" ]; then
    cp "$RMQ_JOIN/definitions.json" "$dir/definitions.json"
    return
  fi
  if [ -n "${RMQ_DEFINITIONS:-}" ]; then
    # Users, vhosts and permissions given by the caller (the quickstart uses compose's).
    cp "$RMQ_DEFINITIONS" "$dir/definitions.json"
    return
  fi
  local guest_hash
  guest_hash=$(password_hash guest)
  # Certificate-only users (empty hash) with the hardened worker permissions of DESIGN.md
  # (plus write on <ns>.dead, which declaring a queue with a dead-letter exchange needs):
  # tls-worker on namespace "hard" (broker tests), hw1 on namespace "cluster" (end-to-end),
  # hp1 and hp2 on namespace "hpool" (pools end-to-end: hp1 may read pool "shared"'s queue,
  # hp2 may not).
  python3 - "$guest_hash" >"$dir/definitions.json" <<'PY'
import json, sys
def hardened(user, ns, pools):
    q = lambda name: name.replace(".", "\\.")
    pool = f"|{q(ns)}\\.pool\\.({'|'.join(map(q, pools))})" if pools else ""
    return {"user": user, "vhost": "/",
            "configure": f"^{q(ns)}\\.worker\\.{q(user)}$",
            "write": f"^({q(ns)}\\.events|{q(ns)}\\.worker\\.{q(user)}|{q(ns)}\\.dead)$",
            "read": f"^({q(ns)}\\.worker\\.{q(user)}|{q(ns)}\\.cmd{pool})$"}
users = [{"name": "guest", "password_hash": sys.argv[1], "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]}]
perms = [{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]
for user, ns, pools in [("tls-worker", "hard", []), ("hw1", "cluster", []),
                        ("hp1", "hpool", ["shared"]), ("hp2", "hpool", [])]:
    users.append({"name": user, "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []})
    perms.append(hardened(user, ns, pools))
json.dump({"vhosts": [{"name": "/"}], "users": users, "permissions": perms}, sys.stdout, indent=1)
PY
  python3 -m json.tool "$dir/definitions.json" >/dev/null || die "bad definitions.json"
}

write_env() {
  # shellcheck disable=SC1091
  . "$dir/ports"
  cat >"$dir/env" <<EOT
AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f
AMQPS_URL=amqps://guest:guest@localhost:$AMQPS_PORT/%2f
AMQPS_PORT=$AMQPS_PORT
AMQP_CA=$dir/certs/ca.crt
AMQP_OTHER_CA=$dir/certs/other/ca.crt
AMQP_CLIENT_CERT=$dir/certs/tls-worker.crt
AMQP_CLIENT_KEY=$dir/certs/tls-worker.key
AMQP_CLIENT_USER=tls-worker
RMQ_NODE_DIR=$dir
RMQ_CTL=$HERE/rmq-node.sh
EOT
}

alive() { # PIDFILE -> is that process running (not a zombie)?
  local pid state
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  [ -r "/proc/$pid/stat" ] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

start_node() {
  require
  node_env
  if [ "${OWN_EPMD:-1}" = 1 ] && ! alive "$dir/epmd.pid"; then
    setsid epmd -port "$EPMD_PORT" -address 127.0.0.1 >"$dir/log/epmd.log" 2>&1 </dev/null &
    echo $! >"$dir/epmd.pid"
  fi
  setsid "$RMQ_BIN/rabbitmq-server" >>"$dir/log/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/server.pid"
  local deadline=$((SECONDS + START_TIMEOUT))
  until (exec 3<>"/dev/tcp/127.0.0.1/$AMQPS_PORT") 2>/dev/null; do
    if ! alive "$dir/server.pid"; then
      tail -n 30 "$dir/log/stdout.log" >&2 || true
      die "the node exited during start-up; logs in $dir/log"
    fi
    [ $SECONDS -lt $deadline ] || die "the node did not open port $AMQPS_PORT within ${START_TIMEOUT}s; logs in $dir/log"
    sleep 0.2
  done
  until "$RMQ_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" --timeout 60 await_startup >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "the node did not finish booting within ${START_TIMEOUT}s; logs in $dir/log"
    sleep 0.5
  done
  if [ -n "${JOIN_NODE:-}" ] && [ ! -f "$dir/joined" ]; then
    local ctl=("$RMQ_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" --timeout 60)
    local out="$dir/log/join.log"
    "${ctl[@]}" stop_app >>"$out" 2>&1
    "${ctl[@]}" reset >>"$out" 2>&1
    "${ctl[@]}" join_cluster "$JOIN_NODE" >>"$out" 2>&1 || die "cannot join $JOIN_NODE; see $out"
    "${ctl[@]}" start_app >>"$out" 2>&1
    "${ctl[@]}" await_startup >>"$out" 2>&1
    touch "$dir/joined"
  fi
}

pid_alive() { # PID -> running and not a zombie
  local state
  [ -r "/proc/$1/stat" ] || return 1
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

stop_node() {
  node_env 2>/dev/null || return 0
  if alive "$dir/server.pid"; then
    local pid pids p deadline running
    pid=$(cat "$dir/server.pid")
    # The wrapper script forwards SIGTERM to beam.smp, its child; wait for both.
    pids="$pid $(pgrep -P "$pid" || true)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 30))
    while :; do
      running=
      for p in $pids; do pid_alive "$p" && running="$running $p"; done
      [ -n "$running" ] || break
      if [ $SECONDS -ge $deadline ]; then
        # shellcheck disable=SC2086
        kill -KILL $running 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  fi
  rm -f "$dir/server.pid"
}

kill_node() { # SIGKILL, as if the machine lost power
  node_env 2>/dev/null || return 0
  if alive "$dir/server.pid"; then
    local pid pids p
    pid=$(cat "$dir/server.pid")
    pids="$pid $(pgrep -P "$pid" || true)"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    for _ in $(seq 1 100); do
      running=
      for p in $pids; do pid_alive "$p" && running=1; done
      [ -n "$running" ] || break
      sleep 0.1
    done
  fi
  rm -f "$dir/server.pid"
}

stop_epmd() {
  if alive "$dir/epmd.pid"; then
    kill -TERM "$(cat "$dir/epmd.pid")" 2>/dev/null || true
  fi
  rm -f "$dir/epmd.pid"
}

case $cmd in
  start)
    [ -f "$dir/ports" ] || prepare
    start_node
    write_env
    echo "$dir/env"
    ;;
  stop)
    stop_node
    stop_epmd
    ;;
  restart)
    stop_node
    start_node
    ;;
  kill)
    kill_node
    ;;
  ctl)
    node_env
    exec "$RMQ_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" "${@:3}"
    ;;
  *) die "usage: $0 start|stop|restart|kill|ctl DIR" ;;
esac
