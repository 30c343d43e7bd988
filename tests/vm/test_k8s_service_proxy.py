# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""netlb.ipvs.k8s_service_proxy on a real kernel, run by ansible-playbook as a user runs it.

The node is prepared once by the ipvs_node role (site.yml; skipped when what it installs is
there). The sample cluster is demo/cluster.yaml with its pods from demo/backends.sh: web-1
and web-2 on this node, and a namespace demo-node2 standing for node2 (web-3 and the DNS
pods). The client is the namespace kp-cli (198.51.100.2), whose route to every service
address goes through the node. Two IPVS services the module does not own sit in the table
all along: a keepalived-style VIP 192.0.2.1:80 with a real server, and firewall mark 7.

TCG is slow (importing the kubernetes client alone takes seconds there), so each test is
one playbook of several tasks, with a snapshot of the node between them: the IPVS table
(`ipvsadm -S -n`), the dummy interface, the nft table and the state file.
"""

import base64
import io
import json
import os
import re
import subprocess
import sys
import tarfile

import pytest

from kube_api.server import VM_HOST

pytestmark = pytest.mark.vm

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEMO = os.path.join(REPO, 'demo')
REMOTE = '/var/tmp/netlb-k8s-proxy'
KUBECONFIG = '/root/.kube/netlb-proxy-test.conf'
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
STATE = '/var/lib/netlb-ipvs/k8s-service-proxy.json'
MODULE = 'netlb.ipvs.k8s_service_proxy'
OPTIONS = {
    'service_cidrs': ['10.96.0.0/12'],
    'cluster_cidrs': ['10.244.0.0/16'],
    'node_port_addresses': ['10.0.2.0/24'],  # the lab's NIC only: one NodePort address, a fixed table
    'external_ips_allowed_cidrs': ['192.0.2.50/32'],  # web-sticky's external IP
}
MANIFESTS = dict(OPTIONS, source='manifests', path=REMOTE + '/cluster.yaml', node_name='node1')
API = dict(OPTIONS, source='api', kubeconfig=KUBECONFIG)  # node_name: the default, the host name node1

FOREIGN = [
    '-A -t 192.0.2.1:80 -s wrr',
    '-a -t 192.0.2.1:80 -r 10.244.1.12:80 -g -w 1',  # direct routing: the VIP's port
    '-A -f 7 -s rr',
    '-a -f 7 -r 10.244.1.11:0 -m -w 1',
]
STALE = ['-A -t 10.96.99.99:80 -s rr', '-a -t 10.96.99.99:80 -r 10.244.1.12:8080 -m -w 1']

# What demo/cluster.yaml makes of node1 (NodePorts on 10.0.2.15 only), in `ipvsadm -S -n` lines.
EXPECTED = '''
-A -t 10.96.0.20:80 -s rr
-a -t 10.96.0.20:80 -r 10.244.1.11:8080 -m -w 1
-a -t 10.96.0.20:80 -r 10.244.1.12:8080 -m -w 1
-A -t 10.96.0.20:9090 -s rr
-a -t 10.96.0.20:9090 -r 10.244.1.11:9090 -m -w 1
-a -t 10.96.0.20:9090 -r 10.244.1.12:9090 -m -w 1
-A -t 10.96.0.21:80 -s rr
-a -t 10.96.0.21:80 -r 10.244.1.11:8080 -m -w 1
-a -t 10.96.0.21:80 -r 10.244.1.12:8080 -m -w 1
-a -t 10.96.0.21:80 -r 10.244.2.13:8080 -m -w 1
-A -t 10.0.2.15:30080 -s rr
-a -t 10.0.2.15:30080 -r 10.244.1.11:8080 -m -w 1
-a -t 10.0.2.15:30080 -r 10.244.1.12:8080 -m -w 1
-a -t 10.0.2.15:30080 -r 10.244.2.13:8080 -m -w 1
-A -t 10.96.0.22:80 -s rr
-a -t 10.96.0.22:80 -r 10.244.1.11:8080 -m -w 1
-a -t 10.96.0.22:80 -r 10.244.2.13:8080 -m -w 1
-A -t 192.0.2.100:80 -s rr
-a -t 192.0.2.100:80 -r 10.244.1.11:8080 -m -w 1
-A -t 10.0.2.15:30081 -s rr
-a -t 10.0.2.15:30081 -r 10.244.1.11:8080 -m -w 1
-A -t 10.96.0.23:80 -s rr -p 600
-a -t 10.96.0.23:80 -r 10.244.1.11:8080 -m -w 1
-a -t 10.96.0.23:80 -r 10.244.1.12:8080 -m -w 1
-A -t 192.0.2.50:80 -s rr -p 600
-a -t 192.0.2.50:80 -r 10.244.1.11:8080 -m -w 1
-a -t 192.0.2.50:80 -r 10.244.1.12:8080 -m -w 1
-A -u 10.96.0.10:53 -s lc
-a -u 10.96.0.10:53 -r 10.244.2.21:53 -m -w 1
-a -u 10.96.0.10:53 -r 10.244.2.22:53 -m -w 1
-A -t 10.96.0.10:53 -s lc
-a -t 10.96.0.10:53 -r 10.244.2.21:53 -m -w 1
-a -t 10.96.0.10:53 -r 10.244.2.22:53 -m -w 1
-A -t 10.96.0.10:9153 -s lc
-a -t 10.96.0.10:9153 -r 10.244.2.21:9153 -m -w 1
-a -t 10.96.0.10:9153 -r 10.244.2.22:9153 -m -w 1
-A -t 10.96.0.24:80 -s rr
-a -t 10.96.0.24:80 -r 10.244.1.12:8080 -m -w 1
'''.split('\n')[1:-1]
MANAGED = sum(1 for line in EXPECTED if line.startswith('-A '))
DUMMY = ['10.96.0.10/32', '10.96.0.20/32', '10.96.0.21/32', '10.96.0.22/32', '10.96.0.23/32', '10.96.0.24/32',
         '192.0.2.100/32', '192.0.2.50/32']
NFT_SETS = {
    'dummy4': {'10.96.0.10', '10.96.0.20', '10.96.0.21', '10.96.0.22', '10.96.0.23', '10.96.0.24', '192.0.2.50',
               '192.0.2.100'},
    'lb_restricted4': {'192.0.2.100 . tcp . 80'},
    # The ranges, and the LB address itself as a source: a range holds the node's own
    # 10.0.2.15, so the node may connect (kube-proxy's allowFromNode, from the output chain).
    'lb_allowed4': {'192.0.2.100 . tcp . 80 . 10.0.2.0/24', '192.0.2.100 . tcp . 80 . 198.51.100.0/24',
                    '192.0.2.100 . tcp . 80 . 192.0.2.100'},
    # NodePort and external IP of Cluster-policy Services; not web-lb's (Local keeps the client).
    'masquerade4': {'10.0.2.15 . tcp . 30080', '192.0.2.50 . tcp . 80'},
    'cluster_cidrs4': {'10.244.0.0/16'},
    'services4': {'10.96.0.10 . tcp . 53', '10.96.0.10 . udp . 53', '10.96.0.10 . tcp . 9153',
                  '10.96.0.20 . tcp . 80', '10.96.0.20 . tcp . 9090', '10.96.0.21 . tcp . 80',
                  '10.96.0.22 . tcp . 80', '10.96.0.23 . tcp . 80', '10.96.0.24 . tcp . 80', '192.0.2.50 . tcp . 80',
                  '192.0.2.100 . tcp . 80', '10.0.2.15 . tcp . 30080', '10.0.2.15 . tcp . 30081'},
}

SNAPSHOT = ('ipvsadm -S -n; echo "== dummy"; ip -br addr show kube-ipvs0 2>&1; echo "== nft";'
            ' nft list table inet netlb_ipvs 2>&1; echo "== state"; cat %s 2>&1; true' % STATE)

SETUP = '''
set -e
ipvsadm -C  # this module's tests own the table while they run; the others set up their own
ipvsadm -R <<'EOF'
{foreign}
EOF
{remote}/backends.sh start
ip netns add kp-cli
ip link add kph-cli type veth peer name eth0 netns kp-cli
ip addr add 198.51.100.1/24 dev kph-cli; ip link set kph-cli up
ip -n kp-cli addr add 198.51.100.2/24 dev eth0; ip -n kp-cli link set lo up; ip -n kp-cli link set eth0 up
ip -n kp-cli route add default via 198.51.100.1
'''

TEARDOWN = '''
[ -x {remote}/backends.sh ] && {remote}/backends.sh stop
ip netns pids kp-cli 2>/dev/null | xargs -r kill; ip netns del kp-cli 2>/dev/null
ip link del kph-cli 2>/dev/null; ip link del kube-ipvs0 2>/dev/null
nft delete table inet netlb_ipvs 2>/dev/null
rm -f {state} /var/lib/netlb-ipvs/drain-state.json {kubeconfig}
true
'''.format(remote=REMOTE, state=STATE, kubeconfig=KUBECONFIG)

# Requests from the client namespace: (what, address, how many).
REQUESTS = [
    ('cluster_ip', '10.96.0.20', 4),
    ('node_port', '10.0.2.15:30080', 6),
    ('lb_local', '192.0.2.100', 6),
    ('node_port_local', '10.0.2.15:30081', 4),
    ('sticky_cluster_ip', '10.96.0.23', 8),
    ('sticky_external_ip', '192.0.2.50', 4),
    ('legacy_endpoints', '10.96.0.24', 2),
]


def _prepared(node):
    """True when the ipvs_node role's packages, modules and sysctls are on the node."""
    check = node.run("dpkg-query -W -f='${Status}\\n' ipvsadm conntrack nftables python3-yaml python3-kubernetes"
                     " | grep -c '^install ok installed$'; lsmod | grep -c '^ip_vs '; "
                     'test -f /etc/sysctl.d/90-netlb-ipvs.conf && echo sysctl', check=False).stdout.split()
    return check[:3] == ['5', '1', 'sysctl']


def playbook(node, tmp_path, tasks, name='play'):
    """Run tasks on the node in one ansible-playbook; the result dict of each task."""
    path = tmp_path / ('%s.yml' % name)
    path.write_text(json.dumps([{'name': name, 'hosts': node.name, 'gather_facts': False, 'tasks': tasks}]))
    results_file = tmp_path / ('%s.results.json' % name)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'), NETLB_RESULTS_FILE=str(results_file),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, 'collections'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, 'callback_plugins'), ANSIBLE_CALLBACKS_ENABLED='netlb_results')
    proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', node.inventory, str(path)], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=1500)
    try:
        results = json.loads(results_file.read_text())
    except (OSError, ValueError):
        raise AssertionError('ansible-playbook rc=%d\n%s' % (proc.returncode, proc.stdout))
    assert len(results) == len(tasks), 'the play stopped early:\n%s' % proc.stdout[-20000:]
    return results


def proxy_task(params, check=False, diff=False, ignore_errors=False, name=MODULE):
    task = {'name': name, MODULE: params, 'check_mode': check, 'diff': diff}
    if ignore_errors:
        task['ignore_errors'] = True
    return task


def snapshot_task(name='snapshot'):
    return {'name': name, 'ansible.builtin.shell': SNAPSHOT, 'changed_when': False}


def parse(snapshot):
    """A snapshot's text -> dict: ipvs (sorted lines), dummy (state, addresses), nft (text), state."""
    ipvs, rest = snapshot.split('== dummy\n', 1)
    dummy, rest = rest.split('== nft\n', 1)
    nft, state = rest.split('== state\n', 1)
    words = dummy.split()
    return {'ipvs': sorted(ipvs.splitlines()), 'dummy': (words[1:2], sorted(words[2:])), 'nft': nft,
            'state': state}


def nft_sets(text):
    """name -> set of elements of each set in an `nft list table` text."""
    sets = {}
    for match in re.finditer(r'set (\w+) \{(.*?)\n\t\}', text, re.S):
        elements = re.search(r'elements = \{(.*?)\}', match.group(2), re.S)
        sets[match.group(1)] = {item.strip() for item in elements.group(1).split(',')} if elements else set()
    return sets


def foreign(lines):
    """The lines of the services the module does not own (192.0.2.1:80 and fwmark 7)."""
    return [line for line in lines if line.split()[1:3] in (['-t', '192.0.2.1:80'], ['-f', '7'])]


def _tarball(*names):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz') as tar:
        for name in names:
            tar.add(os.path.join(DEMO, name), arcname=name)
    return base64.b64encode(buf.getvalue()).decode('ascii')


@pytest.fixture(scope='module')
def node(lab_node, tmp_path_factory):
    """The lab node prepared by site.yml, with the demo's pods, the client and the foreign services."""
    if not _prepared(lab_node):
        playbook_path = os.path.join(REPO, 'site.yml')
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'),
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, 'collections'))
        # No timer: this file drives the module itself (test_reconcile.py tests the timer).
        subprocess.run([ANSIBLE_PLAYBOOK, '-i', lab_node.inventory, playbook_path, '-e', 'ipvs_reconcile_mode=off'],
                       cwd=REPO, env=env, check=True, timeout=2400)
        assert _prepared(lab_node), 'site.yml ran but the node still lacks what ipvs_node installs'
    lab_node.run('mkdir -p {0} && base64 -d | tar -xz -C {0}'.format(REMOTE),
                 input=_tarball('cluster.yaml', 'backends.sh'))
    lab_node.run(TEARDOWN, check=False)
    lab_node.run(SETUP.format(foreign='\n'.join(FOREIGN), remote=REMOTE), timeout=600)
    try:
        yield lab_node
    finally:
        lab_node.run(TEARDOWN + 'ipvsadm -C; rm -rf %s' % REMOTE, check=False)


@pytest.fixture(scope='module')
def manifests_runs(node, tmp_path_factory):
    """check (diff) -> snapshot -> apply (diff) -> snapshot -> apply -> check -> snapshot, with
    source manifests; the snapshot before, and the task results."""
    before = node.run(SNAPSHOT).stdout.rstrip('\n')  # as Ansible's stdout, without the last newline
    results = playbook(node, tmp_path_factory.mktemp('manifests'), [
        proxy_task(MANIFESTS, check=True, diff=True, name='check'), snapshot_task(),
        proxy_task(MANIFESTS, diff=True, name='apply'), snapshot_task(),
        proxy_task(MANIFESTS, name='again'), proxy_task(MANIFESTS, check=True, name='check again'),
        snapshot_task()], name='manifests')
    return before, results


def test_manifests_check_apply_idempotent(manifests_runs):
    before, (check, after_check, apply, applied, again, check_again, last) = manifests_runs
    initial = parse(before)
    assert initial['ipvs'] == sorted(FOREIGN)
    assert after_check['stdout'] == before, 'check mode changed the node'
    assert check['changed'] and apply['changed']
    assert check['diff'] == apply['diff'], 'check mode predicted another diff than the real run made'
    assert check['summary']['virtual_services'] == MANAGED
    assert apply['summary']['actions'] == {'add_service': MANAGED, 'add_server': len(EXPECTED) - MANAGED}
    assert apply['skipped_services'] == {'external_name': ['default/mail'], 'headless': ['default/db'],
                                'service_proxy_name': ['default/mesh-only']}
    state = parse(applied['stdout'])
    assert state['ipvs'] == sorted(EXPECTED + FOREIGN)
    assert state['dummy'] == (['DOWN'], DUMMY)
    sets = nft_sets(state['nft'])
    assert {name: sets.get(name) for name in NFT_SETS} == NFT_SETS
    assert not again['changed'] and not check_again['changed'], (again['summary'], check_again['summary'])
    assert last['stdout'] == applied['stdout'], 'a converged run changed the node'


def _ask_all(node):
    script = ['ask() { ip netns exec kp-cli curl -sS -m 5 "http://$1/" 2>&1 | tr "\\n" " "; echo; }']
    for what, address, count in REQUESTS:
        script.append('for i in $(seq %d); do echo "%s $(ask %s)"; done' % (count, what, address))
    answers = {}
    for line in node.run('\n'.join(script), timeout=600).stdout.splitlines():
        what, _space, answer = line.partition(' ')
        answers.setdefault(what, []).append(answer.strip())
    return answers


def test_traffic_from_a_client_namespace(manifests_runs, node):
    answers = _ask_all(node)
    web = {'hello from web-%d' % number for number in (1, 2, 3)}
    assert set(answers['cluster_ip']) == web - {'hello from web-3'}, answers
    assert set(answers['node_port']) == web, answers  # Cluster policy: the other node's pod too
    # externalTrafficPolicy Local: only this node's pod, though web-3 (node2) answers too.
    assert answers['lb_local'] == ['hello from web-1'] * 6, answers
    assert answers['node_port_local'] == ['hello from web-1'] * 4, answers
    for what in ('sticky_cluster_ip', 'sticky_external_ip'):
        assert len(set(answers[what])) == 1 and answers[what][0] in web, answers  # sessionAffinity ClientIP
    assert answers['legacy_endpoints'] == ['hello from web-2'] * 2, answers


UDP_FLOWS = '''
sysctl -qw net.netfilter.nf_conntrack_udp_timeout=600  # outlive the slow runs below (restored after)
ip netns exec kp-cli python3 -c '
import socket
for port in range(40001, 40007):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("198.51.100.2", port))
    sock.sendto(b"q", ("10.96.0.10", 53))
'
'''
FLOWS = 'conntrack -L -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 2>/dev/null; true'


def _flows_by_server(text):
    counts = {}
    for line in text.splitlines():
        match = re.search(r'\bsrc=(10\.244\.2\.2\d) ', line)  # the reply's source: the real server
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


FAULTS = [  # (name, fault kwargs, task options, what the message says)
    ('401', {'kind': 'status', 'code': 401}, {}, '401 Unauthorized'),
    ('403', {'kind': 'status', 'code': 403}, {}, '403 Forbidden'),
    ('500', {'kind': 'status', 'code': 500}, {}, '500 Internal Server Error'),
    ('slow', {'kind': 'slow', 'delay': 12}, {'request_timeout': 3}, 'no answer within 3 s (request_timeout)'),
    ('truncated', {'kind': 'truncate'}, {}, 'truncated'),
    ('empty', {'kind': 'empty'}, {}, None),
]


def test_api_source_stale_foreign_udp_flows_and_faults(manifests_runs, node, kube_api, tmp_path):
    """Source api on the cluster of the manifests, less one DNS pod (10.244.2.21): the first
    run removes that pod's real servers and its UDP conntrack entries, and a stale service
    added by hand inside service_cidrs, keeping the foreign services and an operator's
    address; the second changes nothing. Then each fault of the API server fails the run
    with a clear message and leaves the node byte-identical."""
    kube_api.load(os.path.join(DEMO, 'cluster.yaml'))
    kube_api.add({'apiVersion': 'v1', 'kind': 'Node',
                  'metadata': {'name': 'node1', 'labels': {'topology.kubernetes.io/zone': 'zone-a'}}})
    dns = kube_api.get('/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns-5x2lq')
    dns['endpoints'] = [endpoint for endpoint in dns['endpoints'] if endpoint['addresses'] != ['10.244.2.21']]
    kube_api.add(dns)
    config = open(kube_api.write_kubeconfig(str(tmp_path / 'kubeconfig'), host=VM_HOST)).read()
    node.run('install -d -m 700 /root/.kube && umask 077 && cat > %s' % KUBECONFIG, input=config)
    node.run('ipvsadm -R <<EOF\n%s\nEOF\nip addr add 10.96.99.98/32 dev kube-ipvs0\n%s' % (
        '\n'.join(STALE), UDP_FLOWS))
    flows_before = _flows_by_server(node.run(FLOWS).stdout)
    assert flows_before.get('10.244.2.21') and flows_before.get('10.244.2.22'), flows_before

    # The fault runs read namespace by namespace (default first): the faults below are set
    # for that path only, so the two runs before them read the cluster-wide lists untouched.
    faulty = dict(API, namespaces=['default', 'kube-system'])
    faults = [kube_api.fault(path='/api/v1/namespaces/default/services', **spec) for _n, spec, _o, _m in FAULTS]
    tasks = [proxy_task(API, name='api'), {'name': 'flows', 'ansible.builtin.shell': FLOWS, 'changed_when': False},
             snapshot_task(), proxy_task(API, name='api again')]
    for name, _spec, options, _message in FAULTS:
        tasks += [proxy_task(dict(faulty, **options), ignore_errors=True, name='fault ' + name),
                  snapshot_task('after ' + name)]
    try:
        results = playbook(node, tmp_path, tasks, name='api')
    finally:
        node.run('ip addr del 10.96.99.98/32 dev kube-ipvs0; sysctl -qw net.netfilter.nf_conntrack_udp_timeout=30',
                 check=False)
    first, flows, converged, again = results[:4]

    # 10.244.2.21 leaves: UDP at once; TCP 53 and 9153 drained to weight 0, then deleted in the
    # same run as they are idle. The stale service goes whole.
    assert first['changed'] and first['summary']['actions'] == {'edit_server': 2, 'delete_server': 3,
                                                                'delete_service': 1}, first['summary']
    assert kube_api.requests_to('/api/v1/nodes/node1'), 'node_name did not default to the host name'
    state = parse(converged['stdout'])
    want = [line for line in EXPECTED if '10.244.2.21:' not in line]
    assert state['ipvs'] == sorted(want + FOREIGN), 'stale 10.96.99.99:80 left, or a foreign service touched'
    assert state['dummy'] == (['DOWN'], sorted(DUMMY + ['10.96.99.98/32'])), "the operator's address went"
    assert _flows_by_server(flows['stdout']) == {'10.244.2.22': flows_before['10.244.2.22']}
    assert not again['changed'], again['summary']

    for index, (name, _spec, _options, message) in enumerate(FAULTS):
        run, after = results[4 + 2 * index:6 + 2 * index]
        assert faults[index].hits == 1, name
        assert run.get('failed') and not run['changed'], (name, run)
        if message is None:  # an empty Services list: the delete guard refuses
            assert run['msg'].startswith('refusing to delete 10 of the %d virtual services' % MANAGED), run['msg']
        else:
            prefix = 'cannot read the cluster, nothing was changed: reading Services in namespace default from ' \
                     'https://%s:%d: ' % (VM_HOST, kube_api.port)
            assert run['msg'].startswith(prefix) and message in run['msg'], run['msg']
            assert '\n' not in run['msg'] and 'Traceback' not in run['msg']
        assert after['stdout'] == converged['stdout'], 'the %s fault changed the node' % name
