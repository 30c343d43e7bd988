#!/bin/sh
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Test fixtures of the ipvs_virtual_server scenario, a classic LVS-NAT setup on one node:
#
#   netns nlbt-c   10.250.0.2  --veth--  10.250.0.1  (client; default route via the node)
#   netns nlbt-b1  10.250.1.2  --veth--  10.250.1.1  (backend b1, runs backend.py)
#   netns nlbt-b2  10.250.2.2  --veth--  10.250.2.1  (backend b2, runs backend.py)
#   dummy nlbt-vip             VIP/32 for each VIP given to `up`
#
# The client reaches a VIP through the node (IPVS on INPUT), IPVS NATs to a backend, and
# the backends answer through the node (their default route), where IPVS un-NATs.
#
#   fixtures.sh up VIP...   (re)create everything and start the backends (systemd units)
#   fixtures.sh down        remove everything; safe to run when nothing is there
set -eu

here=$(dirname "$(readlink -f "$0")")
units="nlbt-client nlbt-b1 nlbt-b2"
namespaces="nlbt-c nlbt-b1 nlbt-b2"

down() {
    for unit in $units; do
        systemctl stop "$unit.service" 2>/dev/null || true
    done
    for ns in $namespaces; do
        ip netns delete "$ns" 2>/dev/null || true  # takes its veth pair along
    done
    ip link delete nlbt-vip 2>/dev/null || true
}

pair() {  # pair NAMESPACE SUBNET-OCTET
    ip netns add "$1"
    ip link add "$1-h" type veth peer name eth0 netns "$1"
    ip address add "10.250.$2.1/24" dev "$1-h"
    ip link set "$1-h" up
    ip -n "$1" address add "10.250.$2.2/24" dev eth0
    ip -n "$1" link set lo up
    ip -n "$1" link set eth0 up
    ip -n "$1" route add default via "10.250.$2.1"
}

up() {
    down
    ip link add nlbt-vip type dummy
    ip link set nlbt-vip up
    for vip in "$@"; do
        ip address add "$vip/32" dev nlbt-vip
    done
    pair nlbt-c 0
    pair nlbt-b1 1
    pair nlbt-b2 2
    for name in b1 b2; do
        systemd-run --quiet --collect --unit "nlbt-$name" \
            ip netns exec "nlbt-$name" python3 "$here/backend.py" "$name"
    done
}

case "${1:-}" in
    up) shift; up "$@" ;;
    down) down ;;
    *) echo "usage: $0 up VIP... | down" >&2; exit 2 ;;
esac
