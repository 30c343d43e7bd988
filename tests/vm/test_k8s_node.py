# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node-side edges of k8s_service_proxy against a real kernel (one lab node).

Namespaces on the node: nk-cli (10.201.1.2) and nk-cli2 (10.201.3.2) are clients
routed through the node; nk-be (10.201.2.2) runs an HTTP server on 8080 and its default
route points at a neighbour that does not exist, so a reply reaches a client only when
the node masqueraded the request (the reply then goes to the node's own 10.201.2.1).
IPVS (ipvsadm) forwards 10.96.0.10:80 (a cluster IP) and 192.0.2.5:80 (a load balancer
limited to 10.201.1.2/32) to it with masq; both addresses sit on the dummy nk-ipvs0.
"""

import json
import os
import time

import pytest

pytestmark = pytest.mark.vm

HERE = os.path.dirname(os.path.abspath(__file__))
REMOTE = '/var/tmp/netlb-k8s-node'
DUMMY = 'nk-ipvs0'
VIP = '10.96.0.10'
LB = '192.0.2.5'
CIDRS = ['10.244.0.0/16']
PORTS = [['cluster_ip', 4, 'tcp', VIP, 80, False, [], 'default/web'],
         ['load_balancer', 4, 'tcp', LB, 80, False, ['10.201.1.2/32'], 'default/lb']]

SETUP = '''
set -e
modprobe ip_vs
sysctl -qw net.ipv4.ip_forward=1 net.ipv4.vs.conntrack=1
for ns in nk-cli nk-cli2 nk-be; do ip netns del $ns 2>/dev/null || true; ip netns add $ns; ip -n $ns link set lo up; done
for pair in cli:1 be:2 cli2:3; do
  name=${pair%:*}; net=${pair#*:}
  ip link del nkh-$name 2>/dev/null || true
  ip link add nkh-$name type veth peer name eth0 netns nk-$name
  ip addr add 10.201.$net.1/24 dev nkh-$name; ip link set nkh-$name up
  ip -n nk-$name addr add 10.201.$net.2/24 dev eth0; ip -n nk-$name link set eth0 up
done
ip -n nk-cli route add default via 10.201.1.1
ip -n nk-cli2 route add default via 10.201.3.1
ip -n nk-be route add default via 10.201.2.254
for vip in @VIP@ @LB@; do
  ipvsadm -D -t $vip:80 2>/dev/null || true
  ipvsadm -A -t $vip:80 -s rr
  ipvsadm -a -t $vip:80 -r 10.201.2.2:8080 -m
done
mkdir -p @REMOTE@/www && echo hello-from-backend > @REMOTE@/www/index.html
ip netns exec nk-be sh -c 'cd @REMOTE@/www && nohup python3 -m http.server 8080 --bind 10.201.2.2 \
  >/dev/null 2>&1 &'
'''.replace('@VIP@', VIP).replace('@LB@', LB).replace('@REMOTE@', REMOTE)

TEARDOWN = '''
nft delete table inet netlb_ipvs 2>/dev/null
nft delete table inet nk_operator 2>/dev/null
ipvsadm -D -t {vip}:80 2>/dev/null; ipvsadm -D -t {lb}:80 2>/dev/null
for ns in nk-cli nk-cli2 nk-be; do ip netns pids $ns 2>/dev/null | xargs -r kill; ip netns del $ns 2>/dev/null; done
for link in nkh-cli nkh-be nkh-cli2 {dummy} nk-test0; do ip link del $link 2>/dev/null; done
rm -rf {remote}
true
'''.format(vip=VIP, lb=LB, dummy=DUMMY, remote=REMOTE)


@pytest.fixture(scope='module')
def node(lab_node):
    # The ipvs_node role installs ipvsadm and conntrack; nftables and ping are ours to add.
    lab_node.run('(for tool in nft conntrack ipvsadm ping; do command -v $tool >/dev/null || exit 1; done) || '
                 '(apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -qy install nftables conntrack ipvsadm '
                 'iputils-ping)',
                 timeout=900)
    lab_node.run(TEARDOWN)
    lab_node.ship_collection(REMOTE)
    with open(os.path.join(HERE, 'k8s_node_driver.py')) as handle:
        lab_node.run(['sh', '-c', 'cat > %s/driver.py' % REMOTE], input=handle.read())
    lab_node.run(SETUP)
    try:
        yield lab_node
    finally:
        lab_node.run(TEARDOWN, check=False)


def driver(node, command, **args):
    out = node.run(['python3', REMOTE + '/driver.py', REMOTE, command, json.dumps(args)], timeout=600).stdout
    return json.loads(out)


def dummy_addresses(node, interface):
    data = json.loads(node.run(['ip', '-j', 'addr', 'show', 'dev', interface]).stdout)
    return sorted('%s/%d' % (a['local'], a['prefixlen']) for a in data[0]['addr_info'] if a['scope'] != 'link')


def request(node, netns, address, timeout=3):
    """(curl rc, body, seconds) of GET http://address/ from netns."""
    start = time.time()
    proc = node.run(['ip', 'netns', 'exec', netns, 'curl', '-sS', '-m', str(timeout), 'http://%s/' % address],
                    check=False)
    return proc.returncode, proc.stdout.strip(), time.time() - start


def rules(node, masquerade='external', **extra):
    return driver(node, 'rules', ports=PORTS, dummy=[VIP, LB], masquerade=masquerade, cluster_cidrs=CIDRS, **extra)


def test_dummy_interface(node):
    node.run('ip link del nk-test0 2>/dev/null; true')
    want = ['10.96.0.1', '10.96.0.2', 'fd00::1']
    check = driver(node, 'dummy', interface='nk-test0', desired=want, owned=[], check_mode=True)
    assert (check['created'], check['added'], check['sends']) == (True, want, 1)  # the link lookup only
    assert node.run('ip link show nk-test0', check=False).returncode != 0, 'check mode created the interface'
    first = driver(node, 'dummy', interface='nk-test0', desired=want, owned=[])
    assert {key: first[key] for key in ('created', 'added', 'removed', 'owned')} == {
        'created': True, 'added': want, 'removed': [], 'owned': want}
    link = json.loads(node.run('ip -j -d link show nk-test0').stdout)[0]
    assert link['linkinfo']['info_kind'] == 'dummy' and 'UP' not in link['flags']
    assert dummy_addresses(node, 'nk-test0') == ['10.96.0.1/32', '10.96.0.2/32', 'fd00::1/128']
    node.run('ip addr add 192.0.2.99/32 dev nk-test0')  # the operator's own
    # 1 lookup + 2 dumps + 1 batch: both the add and the removals in one send.
    second = driver(node, 'dummy', interface='nk-test0', desired=['10.96.0.1', 'fd00::2'], owned=first['owned'])
    assert (second['added'], second['removed'], second['sends']) == (['fd00::2'], ['10.96.0.2', 'fd00::1'], 4)
    assert dummy_addresses(node, 'nk-test0') == ['10.96.0.1/32', '192.0.2.99/32', 'fd00::2/128']
    third = driver(node, 'dummy', interface='nk-test0', desired=['10.96.0.1', 'fd00::2'], owned=second['owned'])
    assert (third['changed'], third['sends']) == (False, 3)
    refused = driver(node, 'dummy', interface='nkh-cli', desired=['10.96.0.1'], owned=[])
    assert refused['error'] == 'interface nkh-cli exists and is not a dummy interface (type veth)'


def test_addresses(node):
    got = driver(node, 'addresses', dummy_interface=DUMMY)
    route_src = node.run("ip -4 route show default | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p' | head -1").stdout.strip()
    assert got['primary'][0] == route_src
    assert ['nkh-cli', '10.201.1.1'] in got['local']


def test_rules_load_idempotent_other_tables_untouched(node):
    driver(node, 'dummy', interface=DUMMY, desired=[VIP, LB], owned=[])
    node.run('nft -f -', input='table inet nk_operator {\n\tchain c {\n\t\ttype filter hook input priority 10; '
                               'policy accept;\n\t\ttcp dport 9 counter\n\t}\n}\n')
    operator = node.run('nft list table inet nk_operator').stdout
    node.run('nft delete table inet netlb_ipvs 2>/dev/null; true')
    check = rules(node, check_mode=True)
    assert check['changed'] and check['before'] == ''
    assert node.run('nft list table inet netlb_ipvs', check=False).returncode != 0, 'check mode loaded the table'
    first = rules(node)
    assert first['changed'] and first['after'] == check['after']
    second = rules(node)
    assert not second['changed'] and second['before'] == first['after']
    assert node.run('nft list table inet nk_operator').stdout == operator
    changed = rules(node, masquerade='all')
    assert changed['changed'] and changed['before'] == first['after']
    assert node.run('nft list table inet nk_operator').stdout == operator


@pytest.mark.parametrize('masquerade, answers', [
    pytest.param('none', False, id='none-reply-lost'),
    pytest.param('external', True, id='external'),
    pytest.param('all', True, id='all'),
])
def test_return_path(node, masquerade, answers):
    """Cluster IP from a client outside cluster_cidrs: the backend's reply only comes
    back when the node masqueraded (ct original daddr . proto . port matched)."""
    driver(node, 'dummy', interface=DUMMY, desired=[VIP, LB], owned=[])
    rules(node, masquerade=masquerade)
    rc, body, _seconds = request(node, 'nk-cli', VIP)
    assert (rc == 0 and body == 'hello-from-backend') is answers, (rc, body)


def test_source_ranges(node):
    driver(node, 'dummy', interface=DUMMY, desired=[VIP, LB], owned=[])
    rules(node)
    assert request(node, 'nk-cli', LB)[:2] == (0, 'hello-from-backend')
    rc, _body, seconds = request(node, 'nk-cli2', LB)
    assert rc == 28 and seconds >= 2.5, 'a source outside the ranges got an answer (rc %d)' % rc
    assert request(node, 'nk-cli2', VIP)[:2] == (0, 'hello-from-backend'), 'the cluster IP has no ranges'


def _connect_ssh(node):
    """(rc, first bytes, stderr) of a TCP connect from nk-cli to VIP:22 (rc 124: the
    5 s timeout struck, i.e. nothing answered)."""
    proc = node.run(['ip', 'netns', 'exec', 'nk-cli', 'timeout', '5', 'bash', '-c',
                     'exec 3<>/dev/tcp/%s/22 && head -c 7 <&3' % VIP], check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_reject_unknown_port_on_dummy_address(node):
    driver(node, 'dummy', interface=DUMMY, desired=[VIP, LB], owned=[])
    node.run('nft delete table inet netlb_ipvs 2>/dev/null; true')
    rc, banner, _stderr = _connect_ssh(node)
    assert (rc, banner) == (0, 'SSH-2.0'), 'without the rules sshd answers on the cluster IP (kubernetes#72236)'
    rules(node)
    rc, banner, stderr = _connect_ssh(node)
    # Refused at once by the reject (port unreachable), not left to time out (rc 124).
    assert (rc, banner) == (1, '') and 'Connection refused' in stderr, (rc, banner, stderr)
    ping = node.run(['ip', 'netns', 'exec', 'nk-cli', 'ping', '-c', '1', '-W', '2', VIP], check=False)
    assert ping.returncode == 0, 'ICMP to a service address stays allowed'


def test_conntrack_nothing_to_delete_is_fine(node):
    got = driver(node, 'conntrack', actions=[['delete_server', 'udp', '10.96.0.99', 53, '10.201.2.2', 53],
                                             ['delete_service', 'udp', '10.96.0.98', 53, '', 0]])
    assert got['flows'] == [{'service': '10.96.0.99:53', 'server': '10.201.2.2:53'}, {'service': '10.96.0.98:53'}]


def test_bench_5000_services(node):
    got = driver(node, 'bench', services=5000)
    print('k8s packet rules, 5000 services on the lab node (qemu TCG): %s' % json.dumps(got))
    assert got['noop_changed'] is False
