#!/usr/bin/python3
# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Node side of the k8s_service_proxy benchmark: runs ON a lab node, as root, stdlib only.

    python3 k8s_proxy_node.py netns                 # a fresh, empty namespace that reaches the API
    python3 k8s_proxy_node.py bare --table FILE     # ipvsadm -S -n of the module's table, then -R of it
    python3 k8s_proxy_node.py imports               # seconds of `import kubernetes` in a new process
    python3 k8s_proxy_node.py calibrate             # seconds of a fixed Python workload (also run locally)
    python3 k8s_proxy_node.py cleanup

It sits beside ipvs_node_bench.py (shipped by the controller) and uses its namespace
helpers: every load from empty starts in a new network namespace (see
ipvs_node_bench.enter_fresh_netns for why). The module reads the stand-in API server at
10.0.2.2 (the host's loopback as qemu's user network shows it), so the namespace gets a
veth to the node and is masqueraded there; its end of the veth is the node address the
module serves NodePorts on. Prints one JSON document; progress on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ipvs_node_bench as nodebench  # noqa: E402  (shipped beside this file)

NETNS = nodebench.NETNS
VETH_HOST, VETH_NS = 'nlbbench0', 'eth0'
HOST_ADDRESS, NS_ADDRESS, NETWORK = '192.168.251.1/24', '192.168.251.2/24', '192.168.251.0/24'
NAT_TABLE = 'netlb_bench_nat'
SAVE_REPEAT = 3
ROOT = ['nsenter', '--net=/proc/1/ns/net']  # a command in the node's own namespace


def run(argv, data=None):
    subprocess.run(argv, input=data, universal_newlines=True, check=True)


def nat():
    """The namespace's traffic to the API leaves through the node's uplink, masqueraded
    (a table of ours, replaced as a whole)."""
    run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'])
    subprocess.run(['nft', 'delete', 'table', 'ip', NAT_TABLE], stderr=subprocess.DEVNULL, check=False)
    run(['nft', '-f', '-'], data=(
        'table ip %s {\n chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n'
        '  ip saddr %s oifname != "%s" masquerade\n }\n}\n' % (NAT_TABLE, NETWORK, VETH_HOST)))


def netns():
    """A new, empty NETNS with loopback up, a veth to the node (default route through it)
    and the interpreter wrapper Ansible runs the module with."""
    nodebench.enter_fresh_netns()  # this process moves in; the node's namespace is PID 1's
    # The old pair goes with the old namespace, but not always at once.
    subprocess.run(ROOT + ['ip', 'link', 'delete', VETH_HOST], stderr=subprocess.DEVNULL, check=False)
    run(['ip', 'link', 'add', VETH_NS, 'type', 'veth', 'peer', 'name', VETH_HOST, 'netns', '1'])
    run(['ip', 'addr', 'add', NS_ADDRESS, 'dev', VETH_NS])
    run(['ip', 'link', 'set', VETH_NS, 'up'])
    run(['ip', 'route', 'add', 'default', 'via', HOST_ADDRESS.split('/')[0]])
    run(ROOT + ['ip', 'addr', 'add', HOST_ADDRESS, 'dev', VETH_HOST])
    run(ROOT + ['ip', 'link', 'set', VETH_HOST, 'up'])
    run(ROOT + [sys.executable, os.path.abspath(__file__), 'nat'])
    return {'netns': NETNS, 'interpreter': nodebench.write_netns_python(), 'node_address': NS_ADDRESS}


def bare(table):
    """In NETNS as the module left it: `ipvsadm -S -n` (median of SAVE_REPEAT), its text
    written to table; then, in a fresh NETNS, `ipvsadm -R` of that text from empty."""
    with open('/run/netns/%s' % NETNS) as handle:
        _setns(handle)
    saves = []
    for _ in range(SAVE_REPEAT):
        saves.append(nodebench.ipvsadm(['-S', '-n']))
    env = dict(os.environ, LANG='C', LC_ALL='C')
    text = subprocess.run(['ipvsadm', '-S', '-n'], stdout=subprocess.PIPE, universal_newlines=True, env=env,
                          check=True).stdout
    with open(table, 'w') as handle:
        handle.write(text)
    rules = sum(1 for line in text.splitlines() if line.startswith(('-A', '-a')))
    services = sum(1 for line in text.splitlines() if line.startswith('-A'))
    nodebench.log('ipvsadm -R of %d rules in a fresh namespace' % rules)
    restore = nodebench.bare_restore(text, rules)
    return {'save': sorted(saves)[(len(saves) - 1) // 2], 'saves': saves, 'restore': restore, 'rules': rules,
            'virtual_services': services}


def _setns(handle):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(handle.fileno(), nodebench.CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), 'setns into %s failed' % NETNS)


def imports(repeat=3):
    """Seconds of `import kubernetes` in a new python3 (what every module run pays first)."""
    found = []
    for _ in range(repeat):
        start = time.perf_counter()
        run([sys.executable, '-c', 'import kubernetes.client, kubernetes.config'])
        found.append(time.perf_counter() - start)
    return {'import_kubernetes': sorted(found)[(repeat - 1) // 2], 'runs': found}


def calibrate(rounds=5):
    """Seconds (median of rounds) of a fixed pure-Python workload, JSON text of 100,000
    small objects written and parsed: run here and on the controller, it says how much
    slower the node is at the kind of work the module does (for kube-proxy's figure,
    which comes from real hardware)."""
    found = []
    for _ in range(rounds):
        start = time.perf_counter()
        items = [{'name': 'svc-%05d' % i, 'port': i % 65536, 'ready': i % 3 == 0, 'ip': '10.%d.%d.%d'
                  % (i >> 16, (i >> 8) & 255, i & 255)} for i in range(100000)]
        json.loads(json.dumps(items))
        found.append(time.perf_counter() - start)
    return {'calibrate': sorted(found)[(rounds - 1) // 2]}


def cleanup():
    subprocess.run(['ip', 'netns', 'delete', NETNS], stderr=subprocess.DEVNULL, check=False)
    subprocess.run(['nft', 'delete', 'table', 'ip', NAT_TABLE], stderr=subprocess.DEVNULL, check=False)
    return {'cleaned': True}


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('netns')
    sub.add_parser('nat')
    sub.add_parser('imports')
    sub.add_parser('cleanup')
    sub.add_parser('calibrate')
    bare_parser = sub.add_parser('bare')
    bare_parser.add_argument('--table', required=True)
    args = parser.parse_args(argv)
    if args.command == 'netns':
        answer = netns()
    elif args.command == 'nat':
        nat()
        answer = {}
    elif args.command == 'bare':
        answer = bare(args.table)
    elif args.command == 'imports':
        answer = imports()
    elif args.command == 'calibrate':
        answer = calibrate()
    else:
        answer = cleanup()
    json.dump(answer, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
