#!/usr/bin/env bash
# A real S3 server on loopback for vger's S3 tests: Ceph's RADOS Gateway from Debian's packages, as a
# single-node mon + memstore OSD (data in memory, capped at 4 GiB) + radosgw on 127.0.0.1. Run as root.
#
#   bash tests/s3_server.sh start DIR [PORT]   install the packages when missing, start the daemons in
#                                              DIR (stopping those already running there), create the
#                                              test user, wait for signed requests to work (~2 s)
#   eval "$(bash tests/s3_server.sh env DIR)"  export VGER_TEST_S3_ENDPOINT, _ACCESS_KEY_ID,
#                                              _SECRET_ACCESS_KEY and _REGION for the S3 tests
#   bash tests/s3_server.sh check DIR          signed requests with curl: bucket, put, conditional put
#                                              (412 on the second), ranged get, list, delete
#   bash tests/s3_server.sh stop DIR           kill exactly the daemons started in DIR, remove DIR
#   bash tests/s3_server.sh run -- CMD [ARG...] start a server in a temporary DIR, run CMD with the
#                                              environment of `env` and VGER_TEST_S3_REQUIRED=1
#                                              (the S3 tests then fail, never skip, if the server
#                                              did not start), stop it; exit with CMD's status
# PORT is 7480 unless given (for `run`: VGER_TEST_S3_PORT, else 7480); the monitor listens on PORT + 10000, so servers on two ports coexist.
#
# The recipe and its pitfalls: ../shared/research/feasibility.md, section 7. Without the
# `ms * mode = crc` lines radosgw insists on msgr2 secure mode, which `auth none` cannot give, and
# fails after 300 s with "failed to fetch mon config"; with the default `paxos propose interval`
# (1 s) creating the gateway's pools takes 15 s, not 1. The tests create their own buckets. Data
# lives in the OSD's memory: its RSS grows by about twice what is stored (564 MiB after 256 MiB).
# Without `tcp_nodelay=1` the gateway answers a small GET (or HEAD) on a kept-alive connection 40-45
# ms late (Nagle against the client's delayed ACK; curl shows it too), where a fresh connection
# takes 2 ms: every small request of any client would then cost a round trip no S3 service charges.
# DIR holds the configuration, the logs (DIR/log) and the pid files (DIR/run/*.pid); `start` refuses
# a non-empty DIR it did not create, and `stop` removes only a DIR that `start` created.
set -euo pipefail

ACCESS_KEY=VGERTESTACCESSKEY
SECRET_KEY=vgertestsecretkey0123456789abcdefghijklm
REGION=us-east-1
MARKER=.vger-s3-server
DAEMONS=(radosgw osd mon) # stop order; start order is the reverse
declare -A PROGRAM=([mon]=ceph-mon [osd]=ceph-osd [radosgw]=radosgw)
declare -A LOG=([mon]=mon.a.log [osd]=osd.0.log [radosgw]=client.rgw.r.log)

die() {
  echo "s3_server.sh: $*" >&2
  exit 1
}

now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

usage() {
  sed -n '2,18p' "$0" >&2
  exit 2
}

absolute() { realpath -m -- "$1"; }

# The pid in DIR/run/NAME.pid when that process is still the daemon we started, else nothing.
live_pid() {
  local dir=$1 name=$2 pid
  pid=$(cat "$dir/run/$name.pid" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "${PROGRAM[$name]}" ]] && echo "$pid"
  return 0
}

# Prints the tail of a daemon's log, kills what was started, exits non-zero.
fail() {
  local dir=$1 name=$2 message=$3
  echo "s3_server.sh: $message" >&2
  if [[ -f $dir/log/${LOG[$name]:-} ]]; then
    echo "--- last lines of $dir/log/${LOG[$name]} ---" >&2
    tail -n 30 "$dir/log/${LOG[$name]}" >&2
  fi
  kill_daemons "$dir"
  echo "s3_server.sh: daemons stopped; logs kept in $dir/log (\`stop $dir\` removes them)" >&2
  exit 1
}

kill_daemons() {
  local dir=$1 name pid i
  for name in "${DAEMONS[@]}"; do # one by one, radosgw first: all at once took 7 s, not 2
    pid=$(live_pid "$dir" "$name")
    [[ -n $pid ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      [[ -n $(live_pid "$dir" "$name") ]] || break
      sleep 0.1
    done
    if [[ -n $(live_pid "$dir" "$name") ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$dir/run/$name.pid"
  done
}

install_packages() {
  local missing=() p
  for p in ceph-mon ceph-osd radosgw radosgw-admin ceph; do
    command -v "$p" >/dev/null || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  local t0
  t0=$(now)
  echo "s3_server.sh: installing Ceph (missing: ${missing[*]})" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
    --no-install-recommends ceph-mon ceph-osd radosgw ceph-common >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      -o DPkg::Lock::Timeout=300 --no-install-recommends ceph-mon ceph-osd radosgw ceph-common >&2; } ||
    die "apt-get install of ceph-mon ceph-osd radosgw ceph-common failed"
  echo "s3_server.sh: installed in $(since "$t0") s" >&2
}

write_config() {
  local dir=$1 port=$2 fsid=$3
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
auth cluster required = none
auth service required = none
auth client required = none
mon host = v2:127.0.0.1:$((port + 10000))
ms mon client mode = crc
ms client mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
ms cluster mode = crc
ms service mode = crc
rgw_run_sync_thread = false
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon allow pool size one = true
mon warn on pool no redundancy = false
paxos propose interval = 0.05
[mon.a]
mon data = $dir/mon
mon data avail crit = 0
public addr = v2:127.0.0.1:$((port + 10000))
mon allow pool delete = true
[osd.0]
osd data = $dir/osd
public addr = 127.0.0.1
cluster addr = 127.0.0.1
osd objectstore = memstore
memstore device bytes = 4294967296
osd class load list = *
osd class default list = *
[client.rgw.r]
rgw frontends = beast endpoint=127.0.0.1:$port tcp_nodelay=1
rgw dns name = localhost
EOF
}

# Runs a command bounded in time; on failure or timeout, fails with the given daemon's log.
bounded() {
  local dir=$1 name=$2 seconds=$3
  shift 3
  local out
  if ! out=$(timeout "$seconds" "$@" 2>&1); then
    echo "$out" >&2
    fail "$dir" "$name" "\`$*\` failed or took more than $seconds s"
  fi
  printf '%s' "$out"
}

rss_mib() {
  awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

start() {
  [[ $# -ge 1 && $# -le 2 ]] || usage
  local port=${2:-7480}
  [[ $port =~ ^[0-9]+$ && $port -ge 1024 && $port -le 55535 ]] ||
    die "port must be a number from 1024 to 55535 (the monitor listens on PORT + 10000), got \"$port\""
  [[ $(id -u) -eq 0 ]] || die "run as root (apt-get and the Ceph daemons need it)"
  if [[ -e $1 && ! -f $1/$MARKER && -n $(ls -A "$1" 2>/dev/null) ]]; then
    die "$1 is not empty and was not made by this script; give an empty or new directory"
  fi
  local dir
  dir=$(absolute "$1")
  install_packages
  if [[ -f $dir/$MARKER ]]; then
    echo "s3_server.sh: stopping the server already in $dir" >&2
    stop "$dir"
  fi
  local p
  for p in "$port" $((port + 10000)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      die "something already listens on port $p; stop it or give another PORT (the gateway uses PORT, the monitor PORT + 10000)"
    fi
  done
  local t0
  t0=$(now)
  mkdir -p "$dir"/{log,mon,osd,run,rgw}
  touch "$dir/$MARKER"
  echo "$port" >"$dir/port"
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_config "$dir" "$port" "$fsid"
  export CEPH_CONF=$dir/ceph.conf

  # The monitor listens on PORT + 10000, so servers on different ports do not meet
  bounded "$dir" mon 30 monmaptool --create --fsid "$fsid" --addv a "v2:127.0.0.1:$((port + 10000))" \
    "$dir/run/monmap" >/dev/null
  bounded "$dir" mon 30 ceph-mon --id a --mkfs --monmap "$dir/run/monmap" --keyring /dev/null >/dev/null
  touch "$dir/mon/keyring"
  bounded "$dir" mon 30 ceph-mon --id a --pid-file "$dir/run/mon.pid" >/dev/null
  local osd_id
  osd_id=$(bounded "$dir" mon 30 ceph --connect-timeout 20 osd create)
  [[ $osd_id == 0 ]] || fail "$dir" mon "expected OSD id 0, the monitor gave \"$osd_id\""
  bounded "$dir" mon 30 ceph --connect-timeout 20 osd crush add osd.0 1 root=default >/dev/null
  bounded "$dir" osd 60 ceph-osd --id 0 --mkfs >/dev/null
  bounded "$dir" osd 30 ceph-osd --id 0 --pid-file "$dir/run/osd.pid" >/dev/null
  bounded "$dir" osd 60 radosgw-admin user create --uid vger-test --display-name "vger tests" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  bounded "$dir" radosgw 30 radosgw -n client.rgw.r -k "$dir/rgw/keyring" \
    --pid-file "$dir/run/radosgw.pid" >/dev/null
  local launched=$SECONDS deadline=$((SECONDS + 60))
  until curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; do
    # its pid file appears at once and goes when it exits
    if ((SECONDS - launched >= 3)) && [[ -z $(live_pid "$dir" radosgw) ]]; then
      fail "$dir" radosgw "radosgw exited before answering on 127.0.0.1:$port"
    fi
    ((SECONDS < deadline)) || fail "$dir" radosgw "the gateway did not answer on 127.0.0.1:$port within 60 s"
    sleep 0.5
  done
  # Signed requests prove the test user, and radosgw creates its bucket and data pools now, not in
  # the first test
  url=http://127.0.0.1:$port body=/dev/null
  local request code
  for request in "PUT /vger-warm-up 200" "PUT /vger-warm-up/object 200 --data-binary warm-up" \
    "DELETE /vger-warm-up/object 204" "DELETE /vger-warm-up 204"; do
    set -- $request
    code=$(s3 "$1" "$2" --max-time 60 "${@:4}") || true
    [[ $code == "$3" ]] || fail "$dir" radosgw "$1 $2 as the test user: HTTP ${code:-nothing}, not $3"
  done
  local name pid rss=()
  for name in mon osd radosgw; do
    pid=$(live_pid "$dir" "$name")
    [[ -n $pid ]] || fail "$dir" "$name" "${PROGRAM[$name]} is not running"
    rss+=("$name $(rss_mib "$pid") MiB")
  done
  echo "s3_server.sh: S3 at http://127.0.0.1:$port up in $(since "$t0") s (RSS: ${rss[*]})" >&2
}

stop() {
  [[ $# -eq 1 ]] || usage
  [[ -d $1 ]] || return 0
  local dir
  dir=$(absolute "$1")
  [[ -f $dir/$MARKER ]] || die "$dir was not made by this script; not touching it"
  local t0
  t0=$(now)
  kill_daemons "$dir"
  rm -rf "$dir"
  echo "s3_server.sh: stopped in $(since "$t0") s" >&2
}

endpoint() {
  [[ -f $1/$MARKER && -f $1/port ]] || die "no server was started in $1"
  echo "http://127.0.0.1:$(cat "$1/port")"
}

env_() {
  [[ $# -eq 1 ]] || usage
  local url
  url=$(endpoint "$1")
  echo "export VGER_TEST_S3_ENDPOINT=$url VGER_TEST_S3_ACCESS_KEY_ID=$ACCESS_KEY" \
    "VGER_TEST_S3_SECRET_ACCESS_KEY=$SECRET_KEY VGER_TEST_S3_REGION=$REGION"
}

# One signed request to $url; prints the HTTP status, the body goes to $body.
s3() {
  local method=$1 path=$2
  shift 2
  curl -s -o "$body" -w '%{http_code}' -X "$method" --aws-sigv4 "aws:amz:$REGION:s3" \
    --user "$ACCESS_KEY:$SECRET_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "$url$path"
}

expect() {
  local what=$1 want=$2 got=$3
  if [[ $got != "$want" ]]; then
    echo "FAIL $what: HTTP $got, expected $want" >&2
    cat "$body" >&2
    echo >&2
    exit 1
  fi
  echo "ok   $what ($got)"
}

check() {
  [[ $# -eq 1 ]] || usage
  url=$(endpoint "$1")
  body=$(mktemp)
  local bucket=vger-check-$$
  data=$(mktemp)
  trap 'rm -f "$body" "$data"' EXIT
  printf '0123456789abcdefghij' >"$data"
  expect "create bucket" 200 "$(s3 PUT "/$bucket")"
  expect "put" 200 "$(s3 PUT "/$bucket/a/key" --data-binary "@$data")"
  expect "conditional put of a new key" 200 \
    "$(s3 PUT "/$bucket/a/new" -H 'If-None-Match: *' --data-binary "@$data")"
  expect "conditional put of an existing key" 412 \
    "$(s3 PUT "/$bucket/a/key" -H 'If-None-Match: *' --data-binary @/dev/null)"
  expect "get" 200 "$(s3 GET "/$bucket/a/key")"
  cmp -s "$body" "$data" || { echo "FAIL get: the bytes differ" >&2 && exit 1; }
  expect "ranged get bytes=5-9" 206 "$(s3 GET "/$bucket/a/key" -H 'Range: bytes=5-9')"
  [[ $(cat "$body") == 56789 ]] || { echo "FAIL ranged get: got \"$(cat "$body")\"" >&2 && exit 1; }
  expect "list" 200 "$(s3 GET "/$bucket?list-type=2&prefix=a%2F")"
  grep -q '<KeyCount>2</KeyCount>' "$body" || { echo "FAIL list: $(cat "$body")" >&2 && exit 1; }
  expect "delete" 204 "$(s3 DELETE "/$bucket/a/key")"
  expect "get after delete" 404 "$(s3 GET "/$bucket/a/key")"
  expect "delete" 204 "$(s3 DELETE "/$bucket/a/new")"
  expect "delete bucket" 204 "$(s3 DELETE "/$bucket")"
}

run() {
  [[ ${1:-} == -- ]] && shift
  [[ $# -ge 1 ]] || usage
  local rc=0
  run_dir=$(mktemp -d /tmp/vger-s3-server.XXXXXX) # global: the EXIT trap runs after we return
  rmdir "$run_dir"                                # start makes it, with its marker
  # separate processes: errexit holds inside them, and their failures cannot change our status
  trap 'bash "$0" stop "$run_dir" || true' EXIT
  trap 'exit 130' INT TERM
  export VGER_TEST_S3_REQUIRED=1
  # A server that does not start is reported here and by every S3 test; the other tests still run
  if bash "$0" start "$run_dir" "${VGER_TEST_S3_PORT:-7480}"; then
    eval "$(env_ "$run_dir")"
  else
    echo "s3_server.sh: the S3 server did not start; the S3 tests will fail" >&2
  fi
  "$@" || rc=$?
  return "$rc"
}

case ${1:-} in
run)
  shift
  run "$@"
  ;;
start | stop | check)
  cmd=$1
  shift
  "$cmd" "$@"
  ;;
env)
  shift
  env_ "$@"
  ;;
*) usage ;;
esac
