#!/bin/sh
# The sample cluster's pods on a lab node (demo/cluster.yaml), as network namespaces.
# This node's pods: web-1 (10.244.1.11) and web-2 (10.244.1.12) on the bridge demo-pods
# (10.244.1.1/24). "node2", the other node, is one namespace demo-node2 behind the veth
# v-node2 (10.244.2.1/24) holding its pods' addresses: web-3 (10.244.2.13) and the DNS
# pods 10.244.2.21 and 10.244.2.22 (no DNS server: they only receive). Every web pod
# answers HTTP on 8080 and 9090 with its own name. `backends.sh stop` removes them all.
# Idempotent: a pod that exists is left as it is.
set -eu
BRIDGE=demo-pods
PODS="web-1:10.244.1.11 web-2:10.244.1.12"
NODE2=demo-node2
NODE2_ADDRESSES="10.244.2.13 10.244.2.21 10.244.2.22"

serve() {  # serve NETNS NAME ADDRESS: HTTP on 8080 and 9090, answering "hello from NAME"
    mkdir -p "/run/netlb-demo/$2"
    echo "hello from $2" >"/run/netlb-demo/$2/index.html"
    for port in 8080 9090; do
        ip netns exec "$1" setsid python3 -m http.server "$port" --bind "$3" \
            --directory "/run/netlb-demo/$2" >/dev/null 2>&1 </dev/null &
    done
}

start() {
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add 10.244.1.1/24 dev "$BRIDGE"
        ip link set "$BRIDGE" up
    fi
    for pod in $PODS; do
        name=${pod%%:*}
        address=${pod#*:}
        [ -e "/run/netns/$name" ] && continue
        ip netns add "$name"
        ip link add "v-$name" type veth peer name eth0 netns "$name"
        ip link set "v-$name" master "$BRIDGE" up
        ip -n "$name" addr add "$address/24" dev eth0
        ip -n "$name" link set lo up
        ip -n "$name" link set eth0 up
        ip -n "$name" route add default via 10.244.1.1
        serve "$name" "$name" "$address"
    done
    if [ ! -e "/run/netns/$NODE2" ]; then
        ip netns add "$NODE2"
        ip link add v-node2 type veth peer name eth0 netns "$NODE2"
        ip addr add 10.244.2.1/24 dev v-node2
        ip link set v-node2 up
        ip -n "$NODE2" link set lo up
        for address in $NODE2_ADDRESSES; do
            ip -n "$NODE2" addr add "$address/24" dev eth0
        done
        ip -n "$NODE2" link set eth0 up
        ip -n "$NODE2" route add default via 10.244.2.1
        serve "$NODE2" web-3 10.244.2.13
    fi
    # Wait until every web pod answers, so the first request through a Service does too.
    for address in 10.244.1.11 10.244.1.12 10.244.2.13; do
        for _ in $(seq 50); do
            curl -s -o /dev/null -m 1 "http://$address:8080/" && break
            sleep 0.2
        done
    done
}

stop() {
    for name in web-1 web-2 "$NODE2"; do
        [ -e "/run/netns/$name" ] || continue
        ip netns pids "$name" | xargs -r kill
        ip netns delete "$name"
    done
    ip link delete "$BRIDGE" 2>/dev/null || true
    rm -rf /run/netlb-demo
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
