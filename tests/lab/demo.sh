#!/usr/bin/env bash
# tests/lab/demo.sh: tether's lab, run by `make demo` (as root, after
# `make build`). Two hypervisors and a top-of-rack switch in network
# namespaces, the real daemons, and what each side sees:
#
#   tl-hostA: tetherd, eth0 ---- swA \
#                                     br0 (STP on)  tl-sw: tether-switchd
#   tl-hostB: tetherd, eth0 ---- swB /
#
# The VMs come from libvirt's test driver (test:///LAB/hostA.xml, a node file
# that tetherd loads in-process): web-01 (2 vNICs) on hostA, db-01 on hostB.
# The switch's VM manager reads the same files. Keys are generated up front
# (tests/lab/keygen) and enrolled both ways before the daemons start. Each
# tetherd runs in its own UTS namespace so that its host name (its LLDP
# System Name, which the switch checks against the enrolled key) is
# hostA / hostB.
#
# What it shows, in order, checking each step (bounded polling, no fixed
# sleeps):
#   1. both hosts' status and vNICs (every vNIC "verified"), the switch's
#      ports and VMs (which VM on which port, verified how);
#   2. the data plane: test frames (tests/lab/l2probe) with a verified
#      (source MAC, VID) cross the bridge, others are dropped;
#   3. a spoofing attempt: hostB claims web-01 from a doctored libvirt view;
#      the switch's VM manager does not confirm it, the claim shows in
#      `tetherctl switch rejects`, hostB's frames as web-01 are dropped;
#   4. a live migration of web-01 from hostA to hostB with pre-association,
#      in libvirt's order: the hooks run as libvirt runs them (tether-hook
#      qemu web-01 migrate begin - < web-01.xml on hostB, then prepare,
#      start, started; stopped and release on hostA), the switch's view of
#      where VMs run comes from a placement file (placements:, which the
#      demo rewrites: libvirt's test driver cannot migrate). web-01 keeps
#      sending from hostA (one frame every 0.5 ms) while hostB's started
#      hook runs (libvirt's Prepare phase, before the memory transfer) and
#      for TETHER_LAB_TRANSFER after; meanwhile the switch must list
#      web-01 on both ports, swA noted as the migration's source. At the
#      switchover web-01 sends a RARP and 2,000 frames from hostB while
#      hostA's stopped hook runs. hostA's frames are counted on hostB and
#      hostB's on hostA: none may be lost on either side. Then the same
#      move back to hostA with tetherd in post-move mode (the older
#      behaviour: no pre-association, the started hook does not wait), for
#      comparison; its losses are reported side by side.
# Exit status 0 only when every check passed.
#
# Everything (daemons, namespaces) is removed on exit, also on failure or
# Ctrl-C; the logs and configuration stay in $LAB, overwritten by the next
# run. On failure it prints each side's view and the logs' last lines.
#
# Environment: TETHER_LAB_DIR (default /tmp/tether-lab), TETHER_LAB_NS (the
# namespaces' prefix, default tl), BINDIR (default bin), GO (default go),
# TETHER_LAB_TRANSFER (step 4's memory transfer, default 300ms: the time
# from the destination's started hook to the switchover; 0s is the worst
# case, the guest resuming the moment the hook returns).
set -euo pipefail

cd "$(dirname "$0")/../.."
BINDIR=${BINDIR:-bin}
GO=${GO:-go}
LAB=${TETHER_LAB_DIR:-/tmp/tether-lab}
TRANSFER=${TETHER_LAB_TRANSFER:-300ms}
NS=${TETHER_LAB_NS:-tl}
NS_SW=$NS-sw NS_A=$NS-hostA NS_B=$NS-hostB
SW_SOCK=$LAB/switch/switchd.sock
ctl() { "$BINDIR/tetherctl" "$@"; }
T0=$(date +%s.%N)

WEB=6f1d0000-0000-4000-8000-00000000a001 WEB_MAC1=52:54:00:0a:00:01 WEB_MAC2=52:54:00:0a:00:02
DB=6f1d0000-0000-4000-8000-00000000b001 DB_MAC1=52:54:00:0b:00:01

case $NS in
  *[!a-z0-9-]* | "" | ?????????????*) echo "demo: TETHER_LAB_NS must be 1-12 of a-z, 0-9, '-', not $NS" >&2; exit 1 ;;
esac
case $LAB in
  /?*) ;;
  *) echo "demo: TETHER_LAB_DIR must be an absolute path, not $LAB" >&2; exit 1 ;;
esac
if [ -e "$LAB" ] && [ ! -e "$LAB/.tether-lab" ] && [ ! -e "$LAB/pids" ] && [ -n "$(ls -A "$LAB")" ]; then
  echo "demo: $LAB exists and is not a lab directory; set TETHER_LAB_DIR" >&2
  exit 1
fi
command -v jq >/dev/null || { echo "demo: jq is needed (apt-get install jq)" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: run as root (network namespaces, bridges, nftables)" >&2
  exit 1
fi
for b in tetherd tether-switchd tetherctl tether-hook; do
  [ -x "$BINDIR/$b" ] || { echo "demo: $BINDIR/$b missing: run make build" >&2; exit 1; }
done

# ---- helpers ---------------------------------------------------------------

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%5.1fs", b - a }'; }
say() { printf '\n[%s] == %s\n' "$(elapsed)" "$*"; }
note() { printf '[%s]    %s\n' "$(elapsed)" "$*"; }

PIDS=()
FAILED=1
cleanup() {
  local rc=$?
  set +e
  if [ "$FAILED" -ne 0 ] && [ -d "$LAB" ]; then
    # What each side saw, while the daemons still answer.
    echo
    echo "demo: state at the failure:"
    for h in hostA hostB; do
      [ -S "$LAB/$h/tetherd.sock" ] && { echo "-- tetherctl vifs ($h)"; ctl vifs --socket "$LAB/$h/tetherd.sock" --timeout 2s; }
    done
    if [ -S "$SW_SOCK" ]; then
      echo "-- tetherctl switch ports"; ctl switch ports --socket "$SW_SOCK" --timeout 2s
      echo "-- tetherctl switch rejects"; ctl switch rejects --socket "$SW_SOCK" --timeout 2s
    fi
  fi
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  for ns in "$NS_SW" "$NS_A" "$NS_B"; do
    ip netns del "$ns" 2>/dev/null
  done
  if [ "$FAILED" -ne 0 ]; then
    echo
    echo "demo: FAILED (exit $rc) after $(elapsed). Logs:"
    for f in "$LAB"/*.log; do [ -e "$f" ] && echo "  $f"; done
    for f in "$LAB"/*.log; do
      [ -e "$f" ] || continue
      echo "---- last lines of $f"
      tail -n 15 "$f"
    done
    [ "$rc" -ne 0 ] || rc=1
  else
    echo
    echo "demo: OK in $(elapsed); namespaces removed, logs in $LAB/*.log"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "demo: $*" >&2; exit 1; }

# wait_for SECONDS WHAT CMD...: poll CMD every 0.2 s until it succeeds,
# printing progress every 2 s; fail after SECONDS.
wait_for() {
  local secs=$1 what=$2; shift 2
  local start now last=0
  start=$(date +%s)
  note "waiting for $what (up to ${secs}s)"
  until "$@" >/dev/null 2>&1; do
    now=$(date +%s)
    if [ $((now - start)) -ge "$secs" ]; then
      fail "timed out after ${secs}s waiting for $what"
    fi
    if [ $((now - start)) -ge $((last + 2)) ]; then
      last=$((now - start))
      note "  ... still waiting for $what (${last}s)"
    fi
    sleep 0.2
  done
  note "ok: $what"
}

# node FILE DOMAIN...: a libvirt test driver node file with these running
# domains; a DOMAIN is NAME:UUID:MAC[,MAC...].
node() {
  local file=$1; shift
  {
    echo "<node>"
    local d name uuid macs m
    for d in "$@"; do
      name=${d%%:*}; d=${d#*:}; uuid=${d%%:*}; macs=${d#*:}
      echo "  <domain type='test'><name>$name</name><uuid>$uuid</uuid><memory>65536</memory><os><type>hvm</type></os><devices>"
      for m in ${macs//,/ }; do
        echo "    <interface type='bridge'><mac address='$m'/><source bridge='br0'/></interface>"
      done
      echo "  </devices></domain>"
    done
    echo "</node>"
  } >"$file.tmp"
  mv "$file.tmp" "$file"
}

host_sock() { echo "$LAB/$1/tetherd.sock"; }

# vifs_in HOST [STATE]: how many VIFs HOST has (in STATE).
vifs_in() {
  local out
  out=$(ctl vifs --socket "$(host_sock "$1")" ${2:+--state "$2"} -o json 2>/dev/null) || { echo -1; return; }
  grep -o '"mac": *"' <<<"$out" | wc -l
}
# all_verified HOST N: HOST has N VIFs, all verified.
all_verified() { [ "$(vifs_in "$1")" -eq "$2" ] && [ "$(vifs_in "$1" verified)" -eq "$2" ]; }
# all_rejected HOST N: HOST has N rejected VIFs.
all_rejected() { [ "$(vifs_in "$1" rejected)" -eq "$2" ]; }
# The switch's view. switch_vms: tetherctl switch vms, which fails when
# switchd does not answer.
switch_vms() { ctl switch vms --socket "$SW_SOCK" "$@" 2>/dev/null; }
# web_on PORT [db_on PORT]: both of web-01's MACs on PORT, and only there.
web_on() {
  local all here
  all=$(switch_vms) && here=$(switch_vms --port "$1") || return 1
  grep -qi "$WEB_MAC1" <<<"$here" && grep -qi "$WEB_MAC2" <<<"$here" &&
    [ "$(grep -ci -e "$WEB_MAC1" -e "$WEB_MAC2" <<<"$all")" -eq 2 ] || return 1
  shift
  [ $# -eq 0 ] || "$@"
}
# db_on PORT: db-01's MAC on PORT.
db_on() { switch_vms --port "$1" | grep -qi "$DB_MAC1"; }
# web_gone: the switch answers and lists neither of web-01's MACs.
web_gone() {
  local all
  all=$(switch_vms) && ! grep -qi -e "$WEB_MAC1" -e "$WEB_MAC2" <<<"$all"
}
# neighbours: the switch sees hostA on swA and hostB on swB (signed LLDP).
neighbours() {
  ctl switch ports --socket "$SW_SOCK" 2>/dev/null |
    awk '$1 == "swA" { a = $3 } $1 == "swB" { b = $3 } END { exit !(a == "hostA" && b == "hostB") }'
}
# rejected MAC PORT: the switch recorded a refusal for MAC on PORT.
rejected() { ctl switch rejects --socket "$SW_SOCK" --port "$2" 2>/dev/null | grep -qi "$1"; }

# stp_forwarding: STP has moved both switch ports to forwarding (state 3).
stp_forwarding() {
  local p
  for p in swA swB; do
    [ "$(ip netns exec "$NS_SW" cat "/sys/class/net/$p/brport/state")" = 3 ] || return 1
  done
}
# frame FROM TO MAC VID EXPECT WHAT: send test frames from host FROM's eth0
# with source MAC tagged VID, see whether host TO gets one; fail unless the
# outcome is EXPECT (crossed or dropped).
frame() {
  local from=$1 to=$2 mac=$3 vid=$4 expect=$5 what=$6 got wait=2s
  [ "$expect" = crossed ] || wait=500ms
  got=$("$LAB/l2probe" -wait "$wait" "$NS-$from" "$NS-$to" "$mac" "$vid") || true
  printf '  %s -> %s  src %s VID %-3s %-36s %s\n' "$from" "$to" "$mac" "$vid" "($what)" "$got"
  [ "$got" = "$expect" ] || fail "a frame from $mac VID $vid ($what) $got, want $expect"
}

# stop_pid PID: SIGTERM, up to 10 s, then SIGKILL; PID leaves PIDS (the
# daemons cleanup stops), so that a recycled PID is never signalled.
stop_pid() {
  local p=$1 q rest=()
  for q in "${PIDS[@]}"; do [ "$q" = "$p" ] || rest+=("$q"); done
  PIDS=("${rest[@]}")
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
}

# ---- 0. a clean slate ------------------------------------------------------

say "tether lab: switch $NS_SW (br0, ports swA swB), hosts $NS_A $NS_B"
# Daemons of an earlier run that was killed before its cleanup: those listed
# in its pids file whose command line still names this lab's files.
if [ -f "$LAB/pids" ]; then
  while read -r p; do
    if [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q -- "--config $LAB/"; then
      note "stopping pid $p left over from an earlier run"
      stop_pid "$p"
    fi
  done <"$LAB/pids"
fi
for ns in "$NS_SW" "$NS_A" "$NS_B"; do
  if ip netns list | grep -qw "$ns"; then
    note "removing $ns left over from an earlier run"
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns"
  fi
done
rm -rf "$LAB"
mkdir -p "$LAB"/{switch/host-keys,hostA/switch-keys,hostB/switch-keys}
touch "$LAB/.tether-lab"

# ---- 1. keys and enrolment -------------------------------------------------

say "keys: generated up front and enrolled both ways"
"$GO" build -o "$LAB/keygen" ./tests/lab/keygen
"$GO" build -o "$LAB/l2probe" ./tests/lab/l2probe
SW_ID=$("$LAB/keygen" "$LAB/switch/switch.key" "$LAB/hostA/switch-keys/tor1.pem")
cp "$LAB/hostA/switch-keys/tor1.pem" "$LAB/hostB/switch-keys/tor1.pem"
A_ID=$("$LAB/keygen" "$LAB/hostA/host.key" "$LAB/switch/host-keys/hostA.pem")
B_ID=$("$LAB/keygen" "$LAB/hostB/host.key" "$LAB/switch/host-keys/hostB.pem")
note "switch tor1 key $SW_ID -> hostA/switch-keys, hostB/switch-keys"
note "hostA key $A_ID, hostB key $B_ID -> switch/host-keys/{hostA,hostB}.pem"

# ---- 2. the VMs: libvirt test driver node files ----------------------------

node "$LAB/hostA.xml" "web-01:$WEB:$WEB_MAC1,$WEB_MAC2"
node "$LAB/hostB.xml" "db-01:$DB:$DB_MAC1"
note "hostA: web-01 $WEB ($WEB_MAC1, $WEB_MAC2)"
note "hostB: db-01  $DB ($DB_MAC1)"

# ---- 3. the network --------------------------------------------------------

say "network namespaces"
for ns in "$NS_SW" "$NS_A" "$NS_B"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add swA netns "$NS_SW" type veth peer name eth0 netns "$NS_A"
ip link add swB netns "$NS_SW" type veth peer name eth0 netns "$NS_B"
# STP on: otherwise this kernel's bridge floods 01:80:c2:00:00:00 (LLDP,
# ECP) instead of keeping it; the ports forward data after 2 x 2 s.
ip -n "$NS_SW" link add br0 type bridge stp_state 1 forward_delay 200
for p in swA swB; do
  ip -n "$NS_SW" link set "$p" master br0
  ip -n "$NS_SW" link set "$p" up
done
ip -n "$NS_SW" link set br0 up
ip -n "$NS_A" link set eth0 up
ip -n "$NS_B" link set eth0 up
note "$NS_SW: br0 (stp on) with swA, swB; $NS_A, $NS_B: eth0"

# ---- 4. the daemons --------------------------------------------------------

write_switchd() {
  cat >"$LAB/switch/switchd.yaml" <<EOF
name: tor1
bridge: br0
ports: all
key_file: $LAB/switch/switch.key
host_keys: $LAB/switch/host-keys
vm_managers:
  hostA: "test://$LAB/hostA.xml"
  hostB: "test://$LAB/hostB.xml"
placements: $LAB/placements.yaml
profiles:
  default: {name: tenant-a, vid: 100, mode: switch}
# RKA 18: keep-alive 2.6 s, the switch's keep-alive timeout 4.4 s, so a
# machine that stalls for 2 s (a loaded CI runner) does not time out a VSI.
evb: {r: 3, rte: 12, rwd: 20, rka: 18, reflective_relay: true}
socket: $SW_SOCK
socket_group: ""
state_dir: $LAB/switch/state
restart_grace: 5s
log: {level: info}
EOF
}

# write_tetherd HOST [NODEFILE [MIGRATION]]: tetherd.yaml of HOST, its
# libvirt the test driver on NODEFILE (default $LAB/HOST.xml, the switch's
# view too), migration.mode MIGRATION (default pre-associate).
write_tetherd() {
  local h=$1 nodefile=${2:-$LAB/$1.xml} mode=${3:-pre-associate}
  cat >"$LAB/$h/tetherd.yaml" <<EOF
state_dir: $LAB/$h/state
socket: $LAB/$h/tetherd.sock
socket_group: ""
spool_dir: $LAB/$h/spool
libvirt: {uri: "test://$nodefile"}
uplinks:
  - interface: eth0
identity:
  key_file: $LAB/$h/host.key
  switch_keys: $LAB/$h/switch-keys
require_signed: true
evb: {r: 3, rte: 12, rwd: 20, rka: 18}
migration: {mode: $mode}
log: {level: info}
EOF
}

start_switchd() {
  "$BINDIR/tether-switchd" --config "$LAB/switch/switchd.yaml" --netns "/run/netns/$NS_SW" \
    >>"$LAB/switchd.log" 2>&1 &
  SW_PID=$!
  PIDS+=("$SW_PID")
  echo "$SW_PID" >>"$LAB/pids"
}

# start_tetherd HOST NS: tetherd in NS, in a UTS namespace named HOST.
declare -A TD_PID
start_tetherd() {
  local h=$1 ns=$2
  unshare --uts -- sh -c "hostname $h && exec ip netns exec $ns $BINDIR/tetherd --config $LAB/$h/tetherd.yaml" \
    >>"$LAB/tetherd-$h.log" 2>&1 &
  TD_PID[$h]=$!
  PIDS+=("$!")
  echo "$!" >>"$LAB/pids"
}

say "daemons"
# No placement records yet: the switch asks libvirt (the node files) for
# every host until the migration below.
echo "{}" >"$LAB/placements.yaml"
write_switchd
write_tetherd hostA
write_tetherd hostB
"$BINDIR/tether-switchd" --config "$LAB/switch/switchd.yaml" --check-config >/dev/null 2>"$LAB/check.log" ||
  { cat "$LAB/check.log"; fail "switchd.yaml is invalid"; }
for h in hostA hostB; do
  "$BINDIR/tetherd" --config "$LAB/$h/tetherd.yaml" --check-config >/dev/null 2>"$LAB/check.log" ||
    { cat "$LAB/check.log"; fail "$h/tetherd.yaml is invalid"; }
done
rm -f "$LAB/check.log"
start_switchd
note "tether-switchd in $NS_SW (pid $SW_PID), log $LAB/switchd.log"
start_tetherd hostA "$NS_A"
start_tetherd hostB "$NS_B"
note "tetherd hostA in $NS_A (pid ${TD_PID[hostA]}), log $LAB/tetherd-hostA.log"
note "tetherd hostB in $NS_B (pid ${TD_PID[hostB]}), log $LAB/tetherd-hostB.log"
wait_for 10 "switchd's API" ctl switch status --socket "$SW_SOCK"
wait_for 10 "tetherd hostA's API" ctl status --socket "$(host_sock hostA)"
wait_for 10 "tetherd hostB's API" ctl status --socket "$(host_sock hostB)"

# ---- 5. association and verification ---------------------------------------

say "association: every VIF signed, sent over VDP/ECP, verified by the switch"
wait_for 25 "hostA's 2 VIFs verified" all_verified hostA 2
wait_for 15 "hostB's VIF verified" all_verified hostB 1
wait_for 15 "the switch listing web-01 on swA and db-01 on swB" web_on swA db_on swB
wait_for 15 "the switch's LLDP neighbours hostA on swA, hostB on swB" neighbours

for h in hostA hostB; do
  say "tetherctl status ($h)"
  ctl status --socket "$(host_sock "$h")"
done
for h in hostA hostB; do
  say "tetherctl vifs ($h)"
  ctl vifs --socket "$(host_sock "$h")"
done
say "tetherctl switch ports"
ctl switch ports --socket "$SW_SOCK"
say "tetherctl switch vms (which VM on which port, verified how)"
ctl switch vms --socket "$SW_SOCK"

say "data plane: only verified (source MAC, VID) pairs cross the switch"
wait_for 10 "STP forwarding on swA and swB (forward delay 2 x 2 s)" stp_forwarding
frame hostA hostB "$WEB_MAC1" 100 crossed "web-01, verified on swA"
frame hostA hostB "$WEB_MAC2" 100 crossed "web-01's 2nd vNIC"
frame hostB hostA "$DB_MAC1" 100 crossed "db-01, verified on swB"
frame hostA hostB "$WEB_MAC1" 200 dropped "web-01 on a VLAN it was not given"
frame hostA hostB 52:54:00:0a:00:99 100 dropped "a MAC nobody claimed"
frame hostB hostA "$WEB_MAC1" 100 dropped "web-01's MAC from hostB"

# ---- 6. a spoofing attempt: hostB claims web-01 while it runs on hostA ----

say "spoofing: hostB claims web-01's MACs while web-01 runs on hostA"
note "hostB's tetherd is restarted on a doctored libvirt view (hostB-spoof.xml:"
note "db-01 and a copy of web-01, same UUID and MACs) and signs a VDP ASSOCIATE"
note "for them with hostB's enrolled key. The switch asks its own VM manager"
note "for hostB (hostB.xml, unchanged), which does not confirm web-01 there."
node "$LAB/hostB-spoof.xml" "db-01:$DB:$DB_MAC1" "web-01:$WEB:$WEB_MAC1,$WEB_MAC2"
write_tetherd hostB "$LAB/hostB-spoof.xml"
stop_pid "${TD_PID[hostB]}"
start_tetherd hostB "$NS_B"
wait_for 15 "the switch refusing hostB's claim" rejected "$WEB_MAC1" swB
wait_for 10 "hostB's web-01 VIFs rejected" all_rejected hostB 2
say "tetherctl switch rejects"
ctl switch rejects --socket "$SW_SOCK"
say "tetherctl vifs (hostB)"
ctl vifs --socket "$(host_sock hostB)"
say "tetherctl switch vms (web-01 still only on swA)"
ctl switch vms --socket "$SW_SOCK"
web_on swA || fail "the switch let hostB's claim through"
echo
frame hostB hostA "$WEB_MAC1" 100 dropped "hostB sending as web-01"
frame hostA hostB "$WEB_MAC1" 100 crossed "the real web-01 on hostA"

# ---- 7. live migration: web-01 leaves hostA for hostB ----------------------

# web_xml ID: web-01's domain XML as libvirt hands it to the hooks (live XML
# with the domain id ID; the migrate hook's has none).
web_xml() {
  echo "<domain type='kvm'${1:+ id='$1'}><name>web-01</name><uuid>$WEB</uuid><memory>65536</memory><os><type>hvm</type></os><devices>"
  echo "  <interface type='bridge'><mac address='$WEB_MAC1'/><source bridge='br0'/><model type='virtio'/></interface>"
  echo "  <interface type='bridge'><mac address='$WEB_MAC2'/><source bridge='br0'/><model type='virtio'/></interface>"
  echo "</devices></domain>"
}
web_xml >"$LAB/web-01.xml"
web_xml 7 >"$LAB/web-01-live.xml"
# hook_cmd HOST OP SUBOP [EXTRA]: the command line libvirt's qemu hook
# script runs on HOST for web-01 (stdin: the domain XML).
hook_cmd() {
  local xml=$LAB/web-01-live.xml
  [ "$2" = migrate ] && xml=$LAB/web-01.xml
  printf 'TETHER_SOCKET=%s TETHER_SPOOL_DIR=%s %s qemu web-01 %s %s %s < %s' \
    "$(host_sock "$1")" "$LAB/$1/spool" "$BINDIR/tether-hook" "$2" "$3" "${4:--}" "$xml"
}
hook() {
  note "hook on $1: tether-hook qemu web-01 $2 $3 ${4:--}"
  sh -c "$(hook_cmd "$@")" || fail "the $2 hook failed on $1"
}
# vifs_count HOST STATE N: HOST has N VIFs in STATE.
vifs_count() { [ "$(vifs_in "$1" "$2")" -eq "$3" ]; }
# placements LINE...: the switch's placement records (YAML lines).
placements() {
  printf '%s\n' "$@" >"$LAB/placements.yaml.tmp"
  mv "$LAB/placements.yaml.tmp" "$LAB/placements.yaml"
}
# web_state PORT STATE: both of web-01's MACs on PORT in STATE.
web_state() {
  [ "$(switch_vms --port "$1" -o json | jq --arg s "$2" '[.[] | select(.state == $s and (.mac == "'"$WEB_MAC1"'" or .mac == "'"$WEB_MAC2"'"))] | length')" = 2 ]
}
# web_profile PORT: "profile/VID" of web-01's first MAC on PORT.
web_profile() {
  switch_vms --port "$1" -o json | jq -r '.[] | select(.mac == "'"$WEB_MAC1"'") | "\(.profile)/\(.vid)"'
}
# uplink_up HOST: HOST's uplink has a usable switch.
uplink_up() {
  [ "$(ctl status --socket "$(host_sock "$1")" -o json | jq '.sources[] | select(.name == "uplink eth0") | .connected')" = true ]
}
# migrate SRC DST MODE [CHECK]: web-01's live migration from SRC to DST in
# libvirt's order (tests/lab/l2probe/migrate.go), as web-01's frames see
# it: web-01 on SRC sends a stream of frames from its MAC (one every
# 0.5 ms) into SRC's switch port; the started hook runs on DST meanwhile
# (libvirt's Prepare phase, before the memory transfer: the guest still
# runs on SRC); then CHECK (if any) runs, then $TRANSFER of "memory transfer"
# while SRC still sends; at the switchover web-01 sends a RARP and 2,000
# frames from DST's port instead, the placement records become
# placements-after.yaml (the VM left SRC) and the stopped hook runs on SRC
# (libvirt's Confirm phase). SRC's frames are counted on DST, DST's on
# SRC. Prints l2probe's result and keeps the counts in SRC_SENT[MODE],
# SRC_LOST[MODE], DST_SENT[MODE], DST_LOST[MODE].
declare -A SRC_LOST DST_LOST SRC_SENT DST_SENT BACKLOG_DROPS
migrate() {
  local src=$1 dst=$2 mode=$3 out
  local args=(-migrate 2000 -interval 500us -lead 100ms -transfer "$TRANSFER" -wait 300ms
    -started "$(hook_cmd "$dst" started begin)")
  [ $# -lt 4 ] || args+=(-during "$4")
  args+=(-stopped "mv $LAB/placements-after.yaml $LAB/placements.yaml && $(hook_cmd "$src" stopped end)")
  out=$("$LAB/l2probe" "${args[@]}" "$NS-$src" "$NS-$dst" "$WEB_MAC1" 100) || fail "l2probe: $out"
  note "  $out"
  SRC_SENT[$mode]=$(sed -n 's/.*src_sent=\([0-9]*\) .*/\1/p' <<<"$out")
  SRC_LOST[$mode]=$(sed -n 's/.*src_lost=\([0-9]*\) .*/\1/p' <<<"$out")
  DST_SENT[$mode]=$(sed -n 's/.*dst_sent=\([0-9]*\) .*/\1/p' <<<"$out")
  DST_LOST[$mode]=$(sed -n 's/.*dst_lost=\([0-9]*\) .*/\1/p' <<<"$out")
  BACKLOG_DROPS[$mode]=$(sed -n 's/.*backlog_drops=\([0-9]*\) .*/\1/p' <<<"$out")
  RARP=$(sed -n 's/.* rarp=\([a-z]*\) .*/\1/p' <<<"$out")
  DURING_OK=$(sed -n 's/.* during_ok=\([a-z]*\) .*/\1/p' <<<"$out")
}
# web_record STATE: web-01's placement record line in STATE.
web_record() { echo "  - {uuid: $WEB, name: web-01, state: $1, macs: [\"$WEB_MAC1\", \"$WEB_MAC2\"]}"; }
DB_RECORD="  - {uuid: $DB, name: db-01, state: running, macs: [\"$DB_MAC1\"]}"
# overlap-check.sh, run between hostB's started hook and the switchover:
# the switch lists web-01's two MACs on swA, noted as the migration's
# source, and on swB (tetherctl switch vms, printed for the record).
cat >"$LAB/overlap-check.sh" <<EOF
#!/bin/sh
ctl="$(cd "$BINDIR" && pwd)/tetherctl"
\$ctl switch vms --socket "$SW_SOCK" >&2 || exit 1
\$ctl switch vms --socket "$SW_SOCK" -o json | jq -e '
  ([.[] | select(.port == "swA" and (.verified.note // "" | startswith("migrating: source until de-associate")))] | length) == 2 and
  ([.[] | select(.port == "swB" and (.mac == "$WEB_MAC1" or .mac == "$WEB_MAC2"))] | length) == 2' >/dev/null
EOF

say "live migration of web-01 from hostA to hostB, with pre-association"
note "hostB's tetherd back on its own libvirt view (hostB.xml, db-01 only)"
write_tetherd hostB
stop_pid "${TD_PID[hostB]}"
start_tetherd hostB "$NS_B"
wait_for 10 "hostB's VIF verified" all_verified hostB 1
PROFILE_A=$(web_profile swA)
note "web-01's profile on swA: $PROFILE_A"
note "The switch's VM manager now reads placement records: hostB is the"
note "destination of web-01's migration, hostA its source."
placements "hostA:" "  - {uuid: $WEB, name: web-01, state: migrating-out, macs: [\"$WEB_MAC1\", \"$WEB_MAC2\"]}" \
  "hostB:" "  - {uuid: $DB, name: db-01, state: running, macs: [\"$DB_MAC1\"]}" \
  "  - {uuid: $WEB, name: web-01, state: migrating-in, macs: [\"$WEB_MAC1\", \"$WEB_MAC2\"]}"
hook hostB migrate begin
wait_for 15 "hostB's 2 web-01 VIFs pre-associated" vifs_count hostB pre-associated 2
wait_for 15 "web-01's rule installed held back on swB" web_state swB pre-associated
web_state swA associated || fail "web-01 no longer associated on swA while it still runs there"
frame hostB hostA "$WEB_MAC1" 100 dropped "web-01 on hostB before it runs (rule held back)"
hook hostB prepare begin
hook hostB start begin
placements "hostA: []" "hostB:" "$DB_RECORD" "$(web_record running)"
mv "$LAB/placements.yaml" "$LAB/placements-after.yaml"
placements "hostA:" "$(web_record migrating-out)" "hostB:" "$DB_RECORD" "$(web_record migrating-in)"
note "web-01 sends from hostA while the started hook runs on hostB (Prepare phase);"
note "the switch must pass web-01 on both ports until the switchover:"
migrate hostA hostB pre-associate "sh $LAB/overlap-check.sh"
[ "$DURING_OK" = true ] || fail "after hostB's started hook the switch did not list web-01 on swA (migrating) and swB"
[ "$RARP" = true ] || [ "${BACKLOG_DROPS[pre-associate]}" -gt 0 ] || fail "the RARP from web-01 on hostB did not reach hostA"
# None may be lost, but for what the kernel dropped from its per-CPU input
# backlogs meanwhile (shared by every namespace: another program's flood
# on a starved machine drops the lab's frames there, before the switch).
PRE_LOST=$(( ${SRC_LOST[pre-associate]} + ${DST_LOST[pre-associate]} ))
[ "$PRE_LOST" -le "${BACKLOG_DROPS[pre-associate]}" ] ||
  fail "${SRC_LOST[pre-associate]} frames from hostA lost before the switchover and ${DST_LOST[pre-associate]} from hostB after it with pre-association, want 0 (the kernel's backlogs dropped ${BACKLOG_DROPS[pre-associate]} meanwhile)"
wait_for 15 "web-01 associated on swB only (hostA de-associated by its stopped hook)" web_on swB
hook hostA release end
PROFILE_B=$(web_profile swB)
note "web-01's profile on swB: $PROFILE_B"
[ "$PROFILE_A" = "$PROFILE_B" ] || fail "the profile at the destination ($PROFILE_B) differs from the source's ($PROFILE_A)"
wait_for 10 "hostB's 3 VIFs verified" all_verified hostB 3
say "tetherctl vifs (hostB)"
ctl vifs --socket "$(host_sock hostB)"
say "tetherctl switch vms (web-01 now on swB)"
ctl switch vms --socket "$SW_SOCK"
echo
frame hostB hostA "$WEB_MAC1" 100 crossed "web-01, now verified on swB"
frame hostA hostB "$WEB_MAC1" 100 dropped "web-01's MAC from its old host"

# ---- 8. the same move back, post-move, for comparison ----------------------

say "web-01 back to hostA, with tetherd in post-move mode (no pre-association)"
note "libvirt's test driver reads hostA.xml only when tetherd connects:"
note "hostA's tetherd restarts on a view without web-01, in post-move mode."
node "$LAB/hostA.xml"
write_tetherd hostA "$LAB/hostA.xml" post-move
stop_pid "${TD_PID[hostA]}"
start_tetherd hostA "$NS_A"
wait_for 10 "hostA's uplink connected to the switch" uplink_up hostA
wait_for 15 "the switch's LLDP neighbours hostA on swA, hostB on swB" neighbours
placements "hostA:" "  - {uuid: $WEB, name: web-01, state: migrating-in, macs: [\"$WEB_MAC1\", \"$WEB_MAC2\"]}" \
  "hostB:" "  - {uuid: $DB, name: db-01, state: running, macs: [\"$DB_MAC1\"]}" \
  "  - {uuid: $WEB, name: web-01, state: migrating-out, macs: [\"$WEB_MAC1\", \"$WEB_MAC2\"]}"
hook hostA migrate begin
hook hostA prepare begin
hook hostA start begin
web_state swA pre-associated && fail "post-move pre-associated web-01 on swA"
placements "hostA:" "$(web_record running)" "hostB:" "$DB_RECORD"
mv "$LAB/placements.yaml" "$LAB/placements-after.yaml"
placements "hostA:" "$(web_record migrating-in)" "hostB:" "$DB_RECORD" "$(web_record migrating-out)"
note "web-01 sends from hostB while the started hook runs on hostA (post-move: it does not wait):"
migrate hostB hostA post-move
hook hostB release end
wait_for 10 "web-01 associated on swA only" web_on swA
wait_for 10 "hostA's 2 VIFs verified" all_verified hostA 2
wait_for 10 "hostB's VIFs: db-01's only (web-01 de-associated by its stopped hook)" all_verified hostB 1

say "frames lost during the live migration (libvirt's order, 1 frame per 0.5 ms: from the source until the switchover, then from the destination)"
printf '  %-30s %s\n' \
  "pre-associate (hostA->hostB)" "source: ${SRC_LOST[pre-associate]} lost of ${SRC_SENT[pre-associate]}, destination: ${DST_LOST[pre-associate]} lost of ${DST_SENT[pre-associate]}" \
  "post-move (hostB->hostA)" "source: ${SRC_LOST[post-move]} lost of ${SRC_SENT[post-move]}, destination: ${DST_LOST[post-move]} lost of ${DST_SENT[post-move]}"

FAILED=0
