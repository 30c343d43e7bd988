#!/bin/sh
# The sample cluster's pods on a lab node (demo/cluster.yaml): network namespaces web-1
# (10.244.1.11) and web-2 (10.244.1.12) on the bridge demo-pods (10.244.1.1/24), each
# answering HTTP on 8080 and 9090 with its own name. `backends.sh stop` removes them.
# Idempotent: a pod that exists is left as it is.
set -eu
BRIDGE=demo-pods
PODS="web-1:10.244.1.11 web-2:10.244.1.12"

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
        mkdir -p "/run/netlb-demo/$name"
        echo "hello from $name" >"/run/netlb-demo/$name/index.html"
        for port in 8080 9090; do
            ip netns exec "$name" setsid python3 -m http.server "$port" --bind "$address" \
                --directory "/run/netlb-demo/$name" >/dev/null 2>&1 </dev/null &
        done
    done
}

stop() {
    for pod in $PODS; do
        name=${pod%%:*}
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
