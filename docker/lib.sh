# Shared by docker/*.sh and tests/docker/run.sh (sourced, not run).
# Names and addresses of the topology in docker/docker-compose.yml, the compose
# wrapper, and the cluster views read with build/cellar-admin from the host.

CELLAR_DOCKER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CELLAR_ROOT=$(dirname "$CELLAR_DOCKER_DIR")
: "${CELLAR_PROJECT:=cellar}"          # compose project and container name prefix
: "${CELLAR_NET:=10.231.74}"           # the /24 of the bridge network
: "${CELLAR_IMAGE:=cellar:dev}"
: "${CELLAR_GOSSIP_MS:=250}"
: "${CELLAR_LOG_LEVEL:=info}"
export CELLAR_PROJECT CELLAR_NET CELLAR_IMAGE CELLAR_GOSSIP_MS CELLAR_LOG_LEVEL

CELLAR_NODES=(n1 n2 n3 n4 n5 n6)
CELLAR_ADMIN=${CELLAR_ADMIN:-$CELLAR_ROOT/build/cellar-admin}
CELLAR_CLI=${CELLAR_CLI:-$CELLAR_ROOT/build/cellar-cli}
if [ -x /usr/bin/python3 ]; then CELLAR_PY=/usr/bin/python3; else CELLAR_PY=python3; fi

die() { echo "$*" >&2; exit 1; }

# n3 -> 10.231.74.13
node_ip() {
  case "$1" in n[1-6]) echo "$CELLAR_NET.1${1#n}" ;; *) die "unknown node '$1' (n1..n6)" ;; esac
}
node_addr() { echo "$(node_ip "$1"):7400"; }
node_container() { node_ip "$1" >/dev/null && echo "$CELLAR_PROJECT-$1"; }
node_dc() { case "$1" in n[1-3]) echo dc1 ;; n[4-6]) echo dc2 ;; *) die "unknown node '$1'" ;; esac; }
dc_nodes() {
  case "$1" in dc1) echo n1 n2 n3 ;; dc2) echo n4 n5 n6 ;; *) die "unknown datacenter '$1' (dc1, dc2)" ;; esac
}
# 10.231.74.13:7400 -> n3 (anything else unchanged)
addr_node() {
  local a=${1%:*}
  case "$a" in "$CELLAR_NET".1[1-6]) echo "n${a##*.1}" ;; *) echo "$1" ;; esac
}

compose() {
  docker-compose -p "$CELLAR_PROJECT" -f "$CELLAR_DOCKER_DIR/docker-compose.yml" "$@"
}

# running | paused | exited | created | absent
node_state() {
  local s
  s=$(docker inspect -f '{{.State.Status}}' "$(node_container "$1")" 2>/dev/null) || s=absent
  echo "$s"
}

# The membership NODE reports, one line per member:
#   NAME up|down STATUS HOST_ID TOKENS DC RACK
# Fails (and prints nothing) when NODE does not answer within 2 s.
node_view() {
  local json
  json=$("$CELLAR_ADMIN" -h "$(node_addr "$1")" --timeout "${CELLAR_ADMIN_TIMEOUT_MS:-2000}" \
    --json status 2>/dev/null) || return 1
  CELLAR_NET=$CELLAR_NET "$CELLAR_PY" -c '
import json, os, sys
net = os.environ["CELLAR_NET"] + ".1"
for m in json.loads(sys.stdin.read())["members"]:
    host = m["address"].rsplit(":", 1)[0]
    name = "n" + host[len(net):] if host.startswith(net) and len(host) == len(net) + 1 else m["address"]
    print(name, "up" if m["up"] else "down", m["status"] or "-", m["host_id"] or "-",
          m["tokens"], m["datacenter"] or "-", m["rack"] or "-")
' <<<"$json"
}

# How OBSERVER sees TARGET: "up normal", "down normal", ..., "absent", or
# "unreachable" when OBSERVER does not answer.
sees() {
  local v
  v=$(node_view "$1") || { echo unreachable; return; }
  v=$(awk -v t="$2" '$1 == t { print $2, $3 }' <<<"$v")
  echo "${v:-absent}"
}

# Polls "$@" every 0.25 s until it succeeds or TIMEOUT seconds pass, or it
# returns 2 (hopeless: stop waiting). Sets WAITED to the seconds it took (two
# decimals). Returns 0 when it succeeded, 1 otherwise.
WAITED=0
wait_for() {
  local timeout=$1; shift
  local t0 now rc
  t0=$(date +%s.%N)
  while :; do
    rc=0; "$@" || rc=$?
    now=$(date +%s.%N)
    if [ "$rc" = 0 ]; then
      WAITED=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.2f", b - a }')
      return 0
    fi
    if [ "$rc" = 2 ] || awk -v a="$t0" -v b="$now" -v t="$timeout" 'BEGIN { exit !(b - a >= t) }'; then
      WAITED=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.2f", b - a }')
      return 1
    fi
    sleep 0.25
  done
}

# NODE reports itself normal and up, and (unless it is n1 or n1 is not
# running) n1 reports it normal and up too: the ring has heard of it.
node_is_normal() {
  [ "$(node_state "$1")" = running ] || return 2
  [ "$(sees "$1" "$1")" = "up normal" ] || return 1
  if [ "$1" != n1 ] && [ "$(node_state n1)" = running ]; then
    [ "$(sees n1 "$1")" = "up normal" ] || return 1
  fi
}

# Starts NODE's container (creating it if needed) and waits until it is
# normal. Prints the node's last log lines when it fails.
start_node() {
  local n=$1 timeout=${2:-60} c
  c=$(node_container "$n")
  case "$(node_state "$n")" in
    running) ;;
    paused) docker unpause "$c" >/dev/null ;;
    absent) compose up -d --no-deps --no-recreate "$n" 2>&1 | grep -v '^Creating\|^Starting\|is up-to-date' >&2 || true ;;
    *) docker start "$c" >/dev/null ;;
  esac
  if ! wait_for "$timeout" node_is_normal "$n"; then
    echo "$n ($(node_ip "$n")) not normal after ${timeout}s; state $(node_state "$n"); last log lines:" >&2
    docker logs --tail 15 "$c" 2>&1 | sed 's/^/  /' >&2
    return 1
  fi
}

# Partitions. The default way is an nftables table of the bridge family on the
# host (needs root and nft): frames between the two sides are dropped on the
# bridge, silently, as a cut link would; the host still reaches every node.
# CELLAR_PARTITION=route instead adds blackhole routes inside each node's
# network namespace, from a throw-away container of the image (/sbin/ip) that
# shares it: no host privilege needed beyond docker, but routes do not survive
# a container restart and a local send fails at once rather than timing out.
partition_mode() {
  if [ -n "${CELLAR_PARTITION:-}" ]; then echo "$CELLAR_PARTITION"; return; fi
  if [ "$(id -u)" = 0 ] && command -v nft >/dev/null 2>&1; then echo nft; else echo route; fi
}
partition_marker() { echo "$CELLAR_DOCKER_DIR/.stage/$CELLAR_PROJECT.partition"; }
nft_table() { echo "cellar_${CELLAR_PROJECT//[^A-Za-z0-9_]/_}"; }

# Runs ip(8) commands (one per line on stdin) in NODE's network namespace.
node_ip_batch() {
  docker run --rm -i --network "container:$(node_container "$1")" --cap-add NET_ADMIN \
    --entrypoint /sbin/ip "$CELLAR_IMAGE" -force -batch - >/dev/null 2>&1
}

# partition_apply "n1 n2 n3" "n4 n5 n6": no traffic between the two groups.
partition_apply() {
  local a=($1) b=($2) n ips_a ips_b
  mkdir -p "$CELLAR_DOCKER_DIR/.stage"
  partition_mode >"$(partition_marker)"
  ips_a=$(for n in "${a[@]}"; do node_ip "$n"; done | paste -sd, -)
  ips_b=$(for n in "${b[@]}"; do node_ip "$n"; done | paste -sd, -)
  case "$(partition_mode)" in
  nft)
    local t; t=$(nft_table)
    nft -f - <<EOF
table bridge $t
delete table bridge $t
table bridge $t {
  set side_a { type ipv4_addr; elements = { $ips_a } }
  set side_b { type ipv4_addr; elements = { $ips_b } }
  chain forward {
    type filter hook forward priority -200; policy accept;
    ip saddr @side_a ip daddr @side_b counter drop
    ip saddr @side_b ip daddr @side_a counter drop
  }
}
EOF
    ;;
  route)
    local pids=() other
    for n in "${a[@]}"; do
      [ "$(node_state "$n")" = absent ] && continue
      other=$(for o in "${b[@]}"; do echo "route replace blackhole $(node_ip "$o")/32"; done)
      node_ip_batch "$n" <<<"$other" & pids+=($!)
    done
    for n in "${b[@]}"; do
      [ "$(node_state "$n")" = absent ] && continue
      other=$(for o in "${a[@]}"; do echo "route replace blackhole $(node_ip "$o")/32"; done)
      node_ip_batch "$n" <<<"$other" & pids+=($!)
    done
    local rc=0 p; for p in "${pids[@]}"; do wait "$p" || rc=1; done
    return $rc
    ;;
  *) die "CELLAR_PARTITION must be nft or route" ;;
  esac
}

# Removes every partition (both kinds: whichever was used).
partition_heal() {
  local t n pids=()
  t=$(nft_table)
  if command -v nft >/dev/null 2>&1 && nft list table bridge "$t" >/dev/null 2>&1; then
    nft delete table bridge "$t"
  fi
  if [ "$(partition_mode)" = route ] || grep -qs route "$(partition_marker)"; then
    for n in "${CELLAR_NODES[@]}"; do
      case "$(node_state "$n")" in running|paused) ;; *) continue ;; esac
      node_ip_batch "$n" <<<"route flush type blackhole" & pids+=($!)
    done
    for t in "${pids[@]}"; do wait "$t" || true; done
  fi
  rm -f "$(partition_marker)"
  return 0
}

# Packets dropped so far by the nft partition (empty if none is in place).
partition_drops() {
  nft list table bridge "$(nft_table)" 2>/dev/null | awk '/counter/ { s += $(NF-3) } END { if (NR) print s + 0 }'
}
