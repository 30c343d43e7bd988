# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node-side edges of k8s_service_proxy against a real kernel (one lab node).

Namespaces on the node: nk-cli (10.201.1.2) and nk-cli2 (10.201.3.2) are clients
routed through the node; nk-be (10.201.2.2) runs an HTTP server on 8080 and its default
route points at a neighbour that does not exist, so a reply reaches a client only when
the node masqueraded the request (the reply then goes to the node's own 10.201.2.1).
IPVS (ipvsadm) forwards 10.96.0.10:80 (a cluster IP), 192.0.2.5:80 (a load balancer
limited to 10.201.1.2/32) and 192.0.2.6:80 (one limited to 10.201.1.0/24, which holds the
node's own 10.201.1.1) to it with masq. nk-hp (10.244.5.2, inside cluster_cidrs, routed
through the node's 10.244.5.1) is a pod that is both a client and the only real server of
the cluster IP 10.96.0.30:80 (its HTTP server on 8080): hairpin. Every service address
sits on the dummy nk-ipvs0.

IPv6 mirrors it (the *6 names): the same namespaces also hold fd20:1::2 (nk-cli),
fd20:3::2 (nk-cli2), fd20:2::2 (nk-be, its default route via the missing fd20:2::254) and
fd44:5::2 (nk-hp, inside cluster_cidrs' fd44::/16), the node fd20:N::1 and fd44:5::1;
fd00:96::10 is a cluster IP, 2001:db8::5 a load balancer limited to fd20:1::2/128,
2001:db8::6 one limited to fd20:1::/64 (which holds the node's fd20:1::1), fd00:96::30
the hairpin pod's cluster IP.
"""

import json
import os
import time

import pytest
from kube_api import objects

pytestmark = pytest.mark.vm

HERE = os.path.dirname(os.path.abspath(__file__))
REMOTE = '/var/tmp/netlb-k8s-node'
DUMMY = 'nk-ipvs0'
VIP = '10.96.0.10'
LB = '192.0.2.5'
LB_NODE = '192.0.2.6'
HP_VIP = '10.96.0.30'
HP_POD = '10.244.5.2'
VIP6 = 'fd00:96::10'
LB6 = '2001:db8::5'
LB6_NODE = '2001:db8::6'
HP6_VIP = 'fd00:96::30'
HP6_POD = 'fd44:5::2'
CIDRS = ['10.244.0.0/16', 'fd44::/16']
PORTS = [['cluster_ip', 4, 'tcp', VIP, 80, False, [], 'default/web'],
         ['load_balancer', 4, 'tcp', LB, 80, False, ['10.201.1.2/32'], 'default/lb'],
         ['load_balancer', 4, 'tcp', LB_NODE, 80, False, ['10.201.1.0/24'], 'default/lb-node'],
         ['cluster_ip', 4, 'tcp', HP_VIP, 80, False, [], 'default/hairpin'],
         ['cluster_ip', 6, 'tcp', VIP6, 80, False, [], 'default/web'],
         ['load_balancer', 6, 'tcp', LB6, 80, False, ['fd20:1::2/128'], 'default/lb'],
         ['load_balancer', 6, 'tcp', LB6_NODE, 80, False, ['fd20:1::/64'], 'default/lb-node'],
         ['cluster_ip', 6, 'tcp', HP6_VIP, 80, False, [], 'default/hairpin']]
SERVICE_ADDRESSES = [VIP, LB, LB_NODE, HP_VIP, VIP6, LB6, LB6_NODE, HP6_VIP]
# What the translator reports as node_addresses on this node (every address but loopback
# and the dummy interface's); only 10.201.1.1 and fd20:1::1 matter here.
NODE_ADDRESSES = ['10.0.2.15', '10.201.1.1', '10.201.2.1', '10.201.3.1', '10.244.5.1',
                  'fd20:1::1', 'fd20:2::1', 'fd20:3::1', 'fd44:5::1']

SETUP = '''
set -e
modprobe ip_vs
sysctl -qw net.ipv4.ip_forward=1 net.ipv4.vs.conntrack=1
for ns in nk-cli nk-cli2 nk-be nk-hp; do ip netns del $ns 2>/dev/null || true; ip netns add $ns; ip -n $ns link set lo up; done
for pair in cli:10.201.1 be:10.201.2 cli2:10.201.3 hp:10.244.5; do
  name=${pair%:*}; net=${pair#*:}
  ip link del nkh-$name 2>/dev/null || true
  ip link add nkh-$name type veth peer name eth0 netns nk-$name
  ip addr add $net.1/24 dev nkh-$name; ip link set nkh-$name up
  ip -n nk-$name addr add $net.2/24 dev eth0; ip -n nk-$name link set eth0 up
done
sysctl -qw net.ipv6.conf.all.forwarding=1
for pair in cli:fd20:1 be:fd20:2 cli2:fd20:3 hp:fd44:5; do
  name=${pair%%:*}; net=${pair#*:}
  ip addr add $net::1/64 dev nkh-$name nodad; ip -n nk-$name addr add $net::2/64 dev eth0 nodad
done
ip -n nk-cli route add default via 10.201.1.1
ip -n nk-cli2 route add default via 10.201.3.1
ip -n nk-be route add default via 10.201.2.254
ip -n nk-hp route add default via 10.244.5.1
ip -n nk-cli -6 route add default via fd20:1::1
ip -n nk-cli2 -6 route add default via fd20:3::1
ip -n nk-be -6 route add default via fd20:2::254
ip -n nk-hp -6 route add default via fd44:5::1
for vip in @VIP@ @LB@ @LB_NODE@ @HP_VIP@ [@VIP6@] [@LB6@] [@LB6_NODE@] [@HP6_VIP@]; do
  ipvsadm -D -t $vip:80 2>/dev/null || true
  ipvsadm -A -t $vip:80 -s rr
done
for vip in @VIP@ @LB@ @LB_NODE@; do ipvsadm -a -t $vip:80 -r 10.201.2.2:8080 -m; done
for vip in [@VIP6@] [@LB6@] [@LB6_NODE@]; do ipvsadm -a -t $vip:80 -r [fd20:2::2]:8080 -m; done
ipvsadm -a -t @HP_VIP@:80 -r @HP_POD@:8080 -m
ipvsadm -a -t [@HP6_VIP@]:80 -r [@HP6_POD@]:8080 -m
mkdir -p @REMOTE@/www @REMOTE@/hp && echo hello-from-backend > @REMOTE@/www/index.html
echo hello-from-myself > @REMOTE@/hp/index.html
ip netns exec nk-be sh -c 'cd @REMOTE@/www && nohup python3 -m http.server 8080 --bind 10.201.2.2 \
  >/dev/null 2>&1 &'
ip netns exec nk-hp sh -c 'cd @REMOTE@/hp && nohup python3 -m http.server 8080 --bind @HP_POD@ >/dev/null 2>&1 &'
ip netns exec nk-be sh -c 'cd @REMOTE@/www && nohup python3 -m http.server 8080 --bind fd20:2::2 >/dev/null 2>&1 &'
ip netns exec nk-hp sh -c 'cd @REMOTE@/hp && nohup python3 -m http.server 8080 --bind @HP6_POD@ >/dev/null 2>&1 &'
# The servers start in the background: wait until both namespaces hold both listeners.
for i in $(seq 1 150); do
  [ "$(ip netns exec nk-be ss -Hltn | wc -l)" -ge 2 ] && [ "$(ip netns exec nk-hp ss -Hltn | wc -l)" -ge 2 ] && break
  sleep 0.2
done
'''
for _name, _value in (('@VIP6@', VIP6), ('@LB6_NODE@', LB6_NODE), ('@LB6@', LB6), ('@HP6_VIP@', HP6_VIP),
                      ('@HP6_POD@', HP6_POD), ('@VIP@', VIP), ('@LB@', LB), ('@LB_NODE@', LB_NODE),
                      ('@HP_VIP@', HP_VIP), ('@HP_POD@', HP_POD), ('@REMOTE@', REMOTE)):
    SETUP = SETUP.replace(_name, _value)

TEARDOWN = '''
nft delete table inet netlb_ipvs 2>/dev/null
nft delete table inet nk_operator 2>/dev/null
for vip in {vips}; do ipvsadm -D -t $vip:80 2>/dev/null; done
for ns in nk-cli nk-cli2 nk-be nk-hp; do ip netns pids $ns 2>/dev/null | xargs -r kill; ip netns del $ns 2>/dev/null; done
for link in nkh-cli nkh-be nkh-cli2 nkh-hp {dummy} nk-test0 nk-kill0; do ip link del $link 2>/dev/null; done
rm -rf {remote}
true
'''.format(vips=' '.join(a if ':' not in a else '[%s]' % a for a in SERVICE_ADDRESSES), dummy=DUMMY, remote=REMOTE)


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
    proc = node.run(['ip', 'netns', 'exec', netns, 'curl', '-sS', '-m', str(timeout), url(address)], check=False)
    return proc.returncode, proc.stdout.strip(), time.time() - start


def url(address):
    return 'http://%s/' % ('[%s]' % address if ':' in address else address)


def rules(node, masquerade='external', **extra):
    extra.setdefault('local_endpoints', [HP_POD, HP6_POD])
    extra.setdefault('node_addresses', NODE_ADDRESSES)
    extra.setdefault('cluster_cidrs', CIDRS)
    return driver(node, 'rules', ports=PORTS, dummy=SERVICE_ADDRESSES, masquerade=masquerade, **extra)


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
    driver(node, 'dummy', interface=DUMMY, desired=SERVICE_ADDRESSES, owned=[])
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


@pytest.mark.parametrize('masquerade, vip, answers', [
    pytest.param('none', VIP, False, id='none-reply-lost'),
    pytest.param('external', VIP, True, id='external'),
    pytest.param('all', VIP, True, id='all'),
    pytest.param('none', VIP6, False, id='ipv6-none-reply-lost'),
    pytest.param('external', VIP6, True, id='ipv6-external'),
    pytest.param('external-no-cidrs', VIP, False, id='no-cluster-cidrs-clients-kept-as-kube-proxy-keeps-them'),
])
def test_return_path(node, masquerade, vip, answers):
    """Cluster IP from a client outside cluster_cidrs: the backend's reply only comes
    back when the node masqueraded (ct original daddr . proto . port matched). Without
    cluster_cidrs nobody else is masqueraded (kube-proxy without clusterCIDR)."""
    driver(node, 'dummy', interface=DUMMY, desired=SERVICE_ADDRESSES, owned=[])
    if masquerade == 'external-no-cidrs':
        rules(node, cluster_cidrs=[])
    else:
        rules(node, masquerade=masquerade)
    rc, body, _seconds = request(node, 'nk-cli', vip)
    assert (rc == 0 and body == 'hello-from-backend') is answers, (rc, body)


@pytest.mark.parametrize('lb, vip', [pytest.param(LB, VIP, id='ipv4'), pytest.param(LB6, VIP6, id='ipv6')])
def test_source_ranges(node, lb, vip):
    driver(node, 'dummy', interface=DUMMY, desired=SERVICE_ADDRESSES, owned=[])
    rules(node)
    assert request(node, 'nk-cli', lb)[:2] == (0, 'hello-from-backend')
    rc, _body, seconds = request(node, 'nk-cli2', lb)
    assert rc == 28 and seconds >= 2.5, 'a source outside the ranges got an answer (rc %d)' % rc
    assert request(node, 'nk-cli2', vip)[:2] == (0, 'hello-from-backend'), 'the cluster IP has no ranges'


@pytest.mark.parametrize('masquerade, pod, vip, local_endpoints, answers', [
    pytest.param('external', HP_POD, HP_VIP, [HP_POD], True, id='external-pair-reply-through-the-node'),
    pytest.param('external', HP_POD, HP_VIP, [], False, id='external-no-pair-pod-answers-itself-lost'),
    pytest.param('none', HP_POD, HP_VIP, [HP_POD], False, id='none-no-rule'),
    pytest.param('all', HP_POD, HP_VIP, [], True, id='all-covers-it'),
    pytest.param('external', HP6_POD, HP6_VIP, [HP6_POD], True, id='ipv6-external-pair-reply-through-the-node'),
    pytest.param('external', HP6_POD, HP6_VIP, [], False, id='ipv6-external-no-pair-lost'),
])
def test_hairpin(node, masquerade, pod, vip, local_endpoints, answers):
    """A pod (inside cluster_cidrs, so the cluster-IP rule leaves it alone) reaching
    itself through a cluster IP: IPVS sends its packet back from its own address to its
    own address, which the pod drops (IPv4: a martian) or answers past the client's
    connection (its reply comes from its own address, not the cluster IP's), unless the
    node masqueraded it."""
    driver(node, 'dummy', interface=DUMMY, desired=SERVICE_ADDRESSES, owned=[])
    loaded = rules(node, masquerade=masquerade, local_endpoints=local_endpoints)
    assert ('%s . %s' % (pod, pod) in loaded['after']) is (masquerade == 'external' and bool(local_endpoints))
    node.run('conntrack -D -f %s -d %s 2>/dev/null; true'
             % ('ipv6' if ':' in vip else 'ipv4', vip))  # NAT is chosen per new flow: no leftovers
    rc, body, _seconds = request(node, 'nk-hp', vip)
    assert (rc == 0 and body == 'hello-from-myself') is answers, (rc, body)


def node_request(node, address, timeout=3):
    """(curl rc, body, seconds) of GET http://address/ from the node itself."""
    start = time.time()
    proc = node.run(['curl', '-sS', '-m', str(timeout), url(address)], check=False)
    return proc.returncode, proc.stdout.strip(), time.time() - start


@pytest.mark.parametrize('masquerade, vip, source, answers', [
    pytest.param('external', VIP, None, True, id='the-node-from-the-cluster-ip-masqueraded'),
    pytest.param('none', VIP, None, False, id='unmasqueraded-the-reply-goes-to-the-cluster-ip-lost'),
    pytest.param('external', VIP6, None, True, id='ipv6-the-node-from-the-cluster-ip-masqueraded'),
    pytest.param('external', VIP, '10.201.2.1', True, id='host-network-process-from-a-node-address'),
])
def test_node_to_remote_endpoint(node, masquerade, vip, source, answers):
    """The default options (masquerade external, no cluster_cidrs): the node and a
    host-network process reach a cluster IP whose only endpoint is nk-be, which stands for
    a pod on another node (it has no route back to a cluster IP). The kernel gives the
    node's connection the cluster IP as its source (the destination is a local address);
    only the masquerade of a cluster IP as source (kube-proxy's `src,dst` match) makes the
    reply come back. A process bound to a node address needs none (the pod answers it)."""
    driver(node, 'dummy', interface=DUMMY, desired=SERVICE_ADDRESSES, owned=[])
    rules(node, masquerade=masquerade, cluster_cidrs=[])
    argv = ['curl', '-sS', '-m', '3'] + (['--interface', source] if source else []) + [url(vip)]
    proc = node.run(argv, check=False)
    assert (proc.returncode == 0 and proc.stdout.strip() == 'hello-from-backend') is answers, (
        proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize('address, node_addresses, without_output, answers', [
    pytest.param(LB, NODE_ADDRESSES, True, True, id='no-output-chain-node-passes-its-ranges-the-old-gap'),
    pytest.param(LB, NODE_ADDRESSES, False, False, id='no-node-address-in-ranges-node-dropped'),
    pytest.param(LB_NODE, NODE_ADDRESSES, False, True, id='range-holds-a-node-address-node-allowed'),
    pytest.param(LB_NODE, [], False, False, id='without-the-lb-as-source-element-node-dropped'),
    pytest.param(LB6, NODE_ADDRESSES, False, False, id='ipv6-no-node-address-in-ranges-node-dropped'),
    pytest.param(LB6_NODE, NODE_ADDRESSES, False, True, id='ipv6-range-holds-a-node-address-node-allowed'),
])
def test_source_ranges_from_the_node(node, address, node_addresses, without_output, answers):
    """The node's own connections to a restricted load-balancer IP: IPVS takes them in
    LOCAL_OUT, so only the output chain can filter them; the node connects from the LB
    address itself (the kernel's choice toward a local address)."""
    driver(node, 'dummy', interface=DUMMY, desired=SERVICE_ADDRESSES, owned=[])
    rules(node, node_addresses=node_addresses, without_output=without_output)
    rc, body, seconds = node_request(node, address)
    if answers:
        assert (rc, body) == (0, 'hello-from-backend'), (rc, body)
    else:
        assert rc == 28 and seconds >= 2.5, 'the node got an answer from %s (rc %d, %r)' % (address, rc, body)
    assert request(node, 'nk-cli', address)[:2] == (0, 'hello-from-backend'), 'a client inside the ranges'


def _connect_ssh(node):
    """(rc, first bytes, stderr) of a TCP connect from nk-cli to VIP:22 (rc 124: the
    5 s timeout struck, i.e. nothing answered)."""
    proc = node.run(['ip', 'netns', 'exec', 'nk-cli', 'timeout', '5', 'bash', '-c',
                     'exec 3<>/dev/tcp/%s/22 && head -c 7 <&3' % VIP], check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_reject_unknown_port_on_dummy_address(node):
    driver(node, 'dummy', interface=DUMMY, desired=SERVICE_ADDRESSES, owned=[])
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


UDP_TO = '10.201.1.1'  # the node's own, nothing listening on 5353/5354: entries of delivered packets


def _udp_flows(node, port):
    return node.run('conntrack -L -p udp --orig-dst %s --orig-port-dst %d 2>/dev/null | grep -c sport=; true'
                    % (UDP_TO, port)).stdout.strip()


def test_conntrack_a_service_that_gets_endpoints_loses_every_entry_to_it(node):
    """The flow of a UDP service whose endpoints go from none to some (conntrack.activated):
    every entry to VIP:port goes, whoever answered it; an entry to another port stays."""
    # The kernel tracks a namespace's connections only once a rule asks for conntrack: one
    # rule of ours, so that this test does not depend on what ran before it.
    node.run('nft add table ip nk_track; nft add chain ip nk_track pre "{ type filter hook prerouting priority 0; }"; '
             'nft add rule ip nk_track pre ct state new counter')
    # An unanswered UDP entry lives 30 s; the driver's run alone can take longer on a loaded
    # TCG guest, and the entry to the other port would expire rather than stay.
    timeout = node.run('sysctl -n net.netfilter.nf_conntrack_udp_timeout').stdout.strip()
    node.run('sysctl -qw net.netfilter.nf_conntrack_udp_timeout=900')
    try:
        node.run(['ip', 'netns', 'exec', 'nk-cli', 'python3', '-c', (
            'import socket\n'
            'for port in (40011, 40012, 40013):\n'
            '    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sock.bind(("10.201.1.2", port))\n'
            '    sock.sendto(b"q", ("%s", 5353 if port < 40013 else 5354))\n' % UDP_TO)])
        assert (_udp_flows(node, 5353), _udp_flows(node, 5354)) == ('2', '1')
        got = driver(node, 'conntrack', actions=[['delete_service', 'udp', UDP_TO, 5353, '', 0]])
        assert got['flows'] == [{'service': UDP_TO + ':5353'}]
        assert (_udp_flows(node, 5353), _udp_flows(node, 5354)) == ('0', '1')
    finally:
        node.run('conntrack -D -p udp --orig-dst %s 2>/dev/null; nft delete table ip nk_track; '
                 'sysctl -qw net.netfilter.nf_conntrack_udp_timeout=%s; true' % (UDP_TO, timeout))


def test_bench_5000_services(node):
    got = driver(node, 'bench', services=5000)
    print('k8s packet rules, 5000 services on the lab node (qemu TCG): %s' % json.dumps(got))
    assert got['noop_changed'] is False


def _service(name, address, port=80, protocol='TCP', lb=None, ranges=None):
    ports = [objects.service_port(port, name=protocol.lower(), protocol=protocol)]
    if protocol == 'UDP':  # DNS: the same port over TCP too
        ports.append(objects.service_port(port, name='tcp'))
    return objects.service(name, cluster_ip=address, ports=ports, type='LoadBalancer' if lb else 'ClusterIP',
                           lb_ingress=[{'ip': lb}] if lb else None, source_ranges=ranges)


def _slice(name, addresses, ports):
    return objects.endpoint_slice(
        name, [objects.endpoint(address, node='nk-node', zone=None, serving=None) for address in addresses],
        ports=[objects.slice_port(port, name=protocol.lower(), protocol=protocol) for protocol, port in ports],
        name=name + '-1')


# old -> new: lb-old goes, lb-new comes (each a cluster IP and a restricted LB IP), a DNS pod goes (a
# UDP flow to clear, its TCP port drained then deleted). Addresses of no other test here.
KILL_WEB = [_service('web', '10.97.0.20'), _slice('web', ['10.244.9.1', '10.244.9.2'], [('TCP', 80)])]
KILL_DNS = _service('dns', '10.97.0.10', 53, 'UDP')
KILL_OLD = KILL_WEB + [
    KILL_DNS, _slice('dns', ['10.244.9.11', '10.244.9.12'], [('UDP', 53), ('TCP', 53)]),
    _service('lb-old', '10.97.0.40', lb='198.18.0.40', ranges=['203.0.113.0/24']),
    _slice('lb-old', ['10.244.9.40'], [('TCP', 80)])]
KILL_NEW = KILL_WEB + [
    KILL_DNS, _slice('dns', ['10.244.9.11'], [('UDP', 53), ('TCP', 53)]),
    _service('lb-new', '10.97.0.41', lb='198.18.0.41', ranges=['192.0.2.128/25']),
    _slice('lb-new', ['10.244.9.41'], [('TCP', 80)])]
KILL_ADDRESSES = ['10.97.0.10', '10.97.0.20', '10.97.0.40', '10.97.0.41', '198.18.0.40', '198.18.0.41']


def test_a_run_killed_at_any_step_leaks_nothing(node):
    """k8s_service_proxy's run (pipeline.run, the module without Ansible) from old to new,
    SIGKILLed before each of its writes in turn (the state saves, both packet-rule loads,
    the IPVS applies, the dummy addresses, conntrack), then one normal run: back to old,
    it leaves exactly the IPVS services, dummy addresses, nft table and state file a clean
    run to old leaves (what the killed run created goes: nothing leaks); on to new, exactly
    what a clean run to new leaves. One driver call loops over the kill points on the node."""
    args = {'work': REMOTE + '/killed', 'old': KILL_OLD, 'new': KILL_NEW, 'then': ['old', 'new'],
            'addresses': KILL_ADDRESSES,
            'params': {'service_cidrs': ['10.97.0.0/16'], 'cluster_cidrs': ['10.244.0.0/16'], 'node_name': 'nk-node',
                       'node_zone': 'zone-a', 'dummy_interface': 'nk-kill0', 'families': ['ipv4'],
                       'node_port_range': '39990-39999'}}  # a scope no other test's service is in
    # ~50 runs of the module's code under TCG: more than driver()'s 10 minutes, to be safe.
    got = json.loads(node.run(['python3', REMOTE + '/driver.py', REMOTE, 'killed_runs', json.dumps(args)],
                              timeout=1800).stdout)
    print('killed runs on the lab node: %s points each way, %s s' % (got['points'], got['seconds']))
    assert not got['failures'], got['failures']
    assert not got['mismatches'], json.dumps(got['mismatches'], indent=1)[:6000]
    # Every write was a kill point: record, rules first, IPVS (drain, then the drained TCP server deleted),
    # addresses, rules final, state, flows, state.
    assert got['calls'] == ['save', 'sync_rules', 'apply', 'apply', 'sync_dummy', 'sync_rules', 'save',
                            'clear_udp_flows', 'save'], got['calls']
    assert got['points'] == {'old': len(got['calls']), 'new': len(got['calls'])}


# kube-proxy parity (issue 19) on the kernel, through the module's code from manifests. The
# only endpoint is nk-be's HTTP server, on another node ('nk-other'); nk-hp is a pod of this
# node. What kube-proxy's IPVS proxier programs for these: mh services with the mh-port flag
# (FlagSourceHash); externalTrafficPolicy Local without a local endpoint: every endpoint on the
# load balancer and the NodePorts; a null nodePort: the cluster IP alone.
PARITY_ADDRESSES = ['10.98.0.10', '10.98.0.20', '10.98.0.30', '192.0.2.60', 'fd00:98::20']
PARITY_PARAMS = {'service_cidrs': ['10.98.0.0/16', 'fd00:98::/112'], 'cluster_cidrs': ['10.244.0.0/16', 'fd44::/16'],
                 'node_name': 'nk-node', 'node_zone': 'zone-a', 'dummy_interface': 'nk-par0',
                 'families': ['ipv4', 'ipv6'], 'node_port_range': '39980-39989',
                 'node_port_addresses': ['10.201.2.0/24']}  # IPv4 only: every usable IPv6 address too


def _parity_items():
    def port(node_port=None):
        return objects.service_port(80, name='http', target_port=8080, node_port=node_port)

    def service(name, address, kind='ClusterIP', ports=None, **extra):
        return objects.service(name, cluster_ip=address, type=kind, ports=ports or [port()], selector={'app': 'be'},
                               annotations={'ipvs.netlb.io/scheduler': 'mh'} if name == 'mh-web' else {}, **extra)

    lb = service('lb-local', '10.98.0.20', 'LoadBalancer', ports=[port(39981)], external_policy='Local',
                 cluster_ips=['10.98.0.20', 'fd00:98::20'],  # NodePorts of both
                 lb_ingress=[{'ip': '192.0.2.60', 'ipMode': 'VIP'}])
    lb['spec']['healthCheckNodePort'] = 39982
    items = [service('mh-web', '10.98.0.10'), lb,
             service('null-np', '10.98.0.30', 'NodePort', [dict(port(), nodePort=None)])]  # null, as written
    for name in ('mh-web', 'lb-local', 'null-np'):
        items.append(objects.endpoint_slice(name, [objects.endpoint('10.201.2.2', node='nk-other', zone=None)],
                                            ports=[objects.slice_port(8080, name='http')], name=name + '-1'))
    return items


def test_kube_proxy_parity_on_the_kernel(node):
    """mh with mh-port written and read back from the kernel as written; a pod
    reaches the load-balancer IP of an externalTrafficPolicy Local Service whose only
    endpoint is on another node (kube-proxy's fallback); NodePorts on the IPv4 CIDR's address
    and every usable IPv6 address, never ::1 or fe80::; a null nodePort serves its cluster IP."""
    work = REMOTE + '/parity'
    # Pod routes: the other node's pod answers this node's pods through it.
    node.run('ip -n nk-be route replace 10.244.5.0/24 via 10.201.2.1')
    try:
        got = driver(node, 'sync', work=work, items=_parity_items(), params=PARITY_PARAMS, addresses=PARITY_ADDRESSES)
        lines = got['ipvs']
        assert got['changed'], got
        assert got['health_check_node_ports'] == {'default/lb-local': 39982}
        assert '-A -t 10.98.0.10:80 -s mh -b mh-port' in lines, lines
        assert '-a -t 192.0.2.60:80 -r 10.201.2.2:8080 -m -w 1' in lines, lines
        assert '-A -t 10.98.0.30:80 -s rr' in lines, lines
        node_ports = sorted(line.split()[2] for line in lines if line.startswith('-A') and ':3998' in line)
        assert '10.201.2.1:39981' in node_ports and '[fd20:2::1]:39981' in node_ports, node_ports
        unwanted = ('10.201.1.', '10.0.2.', '[fe80', '[::1]', '127.')
        assert not [item for item in node_ports if item.startswith(unwanted)], node_ports
        rc, body, _seconds = request(node, 'nk-hp', '192.0.2.60')
        assert (rc, body) == (0, 'hello-from-backend')
    finally:
        left = driver(node, 'sync', work=work, items=[], params=PARITY_PARAMS, addresses=PARITY_ADDRESSES, clean=True)
        assert left == {'left': []}, left
        node.run('ip -n nk-be route del 10.244.5.0/24 via 10.201.2.1; ip link del nk-par0; '
                 'nft delete table inet netlb_ipvs; rm -rf %s; true' % work, check=False)
