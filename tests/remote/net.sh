#!/usr/bin/env bash
# Test network for tests/remote.rs: three namespaces with no route out of this machine.
#
#   net.sh up ID WAN_IP     lan (192.168.77.2) -- router (192.168.77.1 | WAN_IP/24) -- wan (WAN_IP+1)
#   net.sh down ID          kills every process in them and deletes them (iptables state goes too)
#
# The router NATs lan -> wan (MASQUERADE) and has miniupnpd's chains, created with
# iptables-legacy as miniupnpd 2.3.1's iptables backend expects. Only inside namespaces.
set -euo pipefail

cmd=${1:?usage: net.sh up ID WAN_IP | down ID}
id=${2:?missing ID}
lan="pc${id}lan" router="pc${id}rtr" wan="pc${id}wan"

case "$cmd" in
  up)
    wan_ip=${3:?missing WAN_IP}
    wan_peer="${wan_ip%.*}.$(( ${wan_ip##*.} + 1 ))"
    for ns in "$lan" "$router" "$wan"; do
      ip netns add "$ns"
      ip -n "$ns" link set lo up
    done
    ip link add "l${id}a" netns "$lan" type veth peer name "l${id}b" netns "$router"
    ip link add "w${id}a" netns "$router" type veth peer name "w${id}b" netns "$wan"
    ip -n "$lan" addr add 192.168.77.2/24 dev "l${id}a"
    ip -n "$lan" link set "l${id}a" up
    ip -n "$lan" route add default via 192.168.77.1
    ip -n "$router" addr add 192.168.77.1/24 dev "l${id}b"
    ip -n "$router" addr add "$wan_ip/24" dev "w${id}a"
    ip -n "$router" link set "l${id}b" up
    ip -n "$router" link set "w${id}a" up
    ip -n "$wan" addr add "$wan_peer/24" dev "w${id}b"
    ip -n "$wan" link set "w${id}b" up
    ip netns exec "$router" sysctl -qw net.ipv4.ip_forward=1
    ext="w${id}a"
    ipt() { ip netns exec "$router" iptables-legacy "$@"; }
    ipt -t nat -N MINIUPNPD
    ipt -t nat -A PREROUTING -i "$ext" -j MINIUPNPD
    ipt -t nat -N MINIUPNPD-POSTROUTING
    ipt -t nat -A POSTROUTING -o "$ext" -j MINIUPNPD-POSTROUTING
    ipt -t nat -A POSTROUTING -o "$ext" -s 192.168.77.0/24 -j MASQUERADE
    ipt -t mangle -N MINIUPNPD
    ipt -t mangle -A PREROUTING -i "$ext" -j MINIUPNPD
    ipt -t filter -N MINIUPNPD
    ipt -t filter -A FORWARD -i "$ext" ! -o "$ext" -j MINIUPNPD
    ;;
  down)
    for ns in "$lan" "$router" "$wan"; do
      if ip netns list | grep -qw "$ns"; then
        for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns delete "$ns" || true
      fi
    done
    ;;
  *)
    echo "usage: net.sh up ID WAN_IP | down ID" >&2
    exit 2
    ;;
esac
