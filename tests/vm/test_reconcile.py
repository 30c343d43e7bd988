# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Drift correction on a real kernel: `site.yml` on the lab node, then the node keeps
itself converged with the ipvs_reconcile role's timer (`netlb-ipvs reconcile`), no Ansible.

The node is both an LVS director (a static table in 203.0.113.0/24: one VIP whose real
servers are the demo's pods, demo/backends.sh) and a Kubernetes node (the demo cluster,
demo/cluster.yaml, served by the stand-in API server on the controller, which the node
reaches as 10.0.2.2). A foreign IPVS service outside both scopes (192.0.2.1:80, as
keepalived would keep) sits in the table all along. The timer runs every 5 s.

Order (one node, one set-up): converge -> drift of every kind at once -> `ipvsadm -C` ->
an EndpointSlice change in the API -> kill -9 in the middle of an apply -> bad input and
an unreachable / empty API -> 20 runs churning the real servers under a client loop ->
reboot -> pull mode (a git repository, signed commits) -> watch mode (`netlb-ipvs watch`:
an EndpointSlice change, the API away and back, 410 Gone and a relist, SIGTERM in the
middle of a sync, the health check port, /healthz and /metrics, 20 endpoint changes under
a client loop, last: it leaves drained real servers) -> mode off. Each test leaves the
node converged for the next.
"""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from kube_api.server import VM_HOST

pytestmark = pytest.mark.vm

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEMO = os.path.join(REPO, 'demo')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
REMOTE = '/var/tmp/netlb-reconcile'
KUBECONFIG = '/etc/netlb-ipvs/kubeconfig'
SERVICES_FILE = '/etc/netlb-ipvs/ipvs-services.json'
METRICS = '/var/lib/prometheus/node-exporter/netlb_ipvs.prom'
STATUS = '/var/lib/netlb-ipvs/reconcile-status.json'
UNIT = 'netlb-ipvs-reconcile.service'
TIMER = 'netlb-ipvs-reconcile.timer'
INTERVAL = 5
# One interval, its random delay, and a run on this emulated node (a few seconds), with room.
WITHIN = 60

VIP = '203.0.113.10'
PODS = ('10.244.1.11', '10.244.1.12', '10.244.2.13')
FOREIGN = '-A -t 192.0.2.1:80 -s wrr'


def static_table(servers):
    return [{'protocol': 'tcp', 'address': VIP, 'port': 80, 'scheduler': 'rr',
             'real_servers': [{'address': address, 'port': 8080, 'forwarding': 'masq'} for address in servers]}]


GROUPS = {
    'lvs_directors': {
        'ipvs_virtual_servers': static_table(PODS[:2]),
        'ipvs_virtual_server_scope': ['203.0.113.0/24'],
    },
    'kube_nodes': {
        'k8s_service_proxy_source': 'api',
        'k8s_service_proxy_kubeconfig': KUBECONFIG,
        'k8s_service_proxy_service_cidrs': ['10.96.0.0/12'],
        'k8s_service_proxy_cluster_cidrs': ['10.244.0.0/16'],
        'k8s_service_proxy_node_port_addresses': ['10.0.2.0/24'],
        'k8s_service_proxy_families': ['ipv4'],
        # kube-proxy's IPVS timeouts, which role ipvs_node now sets and every timer run re-asserts.
        'kube_proxy_tcp_timeout': '2h0m0s',
        'kube_proxy_udp_timeout': '60s',
    },
}
# `ipvsadm -L --timeout` with those (tcpFinTimeout 0s: the kernel's 120 s kept).
IPVS_TIMEOUTS = 'Timeout (tcp tcpfin udp): 7200 120 60'
KERNEL_TIMEOUTS = 'ipvsadm --set 900 120 300'  # the kernel's own, as a reboot leaves them
RECONCILE = {'ipvs_reconcile_interval': '%ds' % INTERVAL, 'ipvs_reconcile_randomized_delay': '1s'}

SETUP = '''
set -e
ipvsadm -C
ipvsadm -R <<'EOF'
{foreign}
EOF
{remote}/backends.sh start
ip netns del rc-cli 2>/dev/null || true
ip link del rch-cli 2>/dev/null || true
ip netns add rc-cli
ip link add rch-cli type veth peer name eth0 netns rc-cli
ip addr add 198.51.100.1/24 dev rch-cli; ip link set rch-cli up
ip -n rc-cli addr add 198.51.100.2/24 dev eth0; ip -n rc-cli link set lo up; ip -n rc-cli link set eth0 up
ip -n rc-cli route add default via 198.51.100.1
ip addr replace {vip}/32 dev lo
'''.format(foreign=FOREIGN, remote=REMOTE, vip=VIP)

# Also what the session's later files must not meet (conftest.py runs this file before them):
# every mode's units, should the mode-off test not have removed them, and the pull test's repository.
TEARDOWN = '''
for unit in {timer} {unit} netlb-ipvs-pull.timer netlb-ipvs-pull.service netlb-ipvs-watch.service; do
  systemctl disable --now $unit
done 2>/dev/null
rm -f /etc/systemd/system/netlb-ipvs-*; systemctl daemon-reload; systemctl reset-failed 'netlb-ipvs*' 2>/dev/null
[ -x {remote}/backends.sh ] && {remote}/backends.sh stop
ip netns pids rc-cli 2>/dev/null | xargs -r kill; ip netns del rc-cli 2>/dev/null
ip link del rch-cli 2>/dev/null; ip link del kube-ipvs0 2>/dev/null; ip addr del {vip}/32 dev lo 2>/dev/null
nft delete table inet netlb_ipvs 2>/dev/null
ipvsadm -C
rm -rf /etc/netlb-ipvs /var/lib/netlb-ipvs /run/netlb-ipvs {metrics} {remote} {pull_repo}
true
'''.format(timer=TIMER, unit=UNIT, remote=REMOTE, vip=VIP, metrics=METRICS, pull_repo='/srv/netlb-fleet.git')

# A client in rc-cli: requests through the VIP, each a new connection, until the stop
# file exists and at least MIN were made; prints JSON.
CLIENT = r'''
import json, os, socket, sys
vip, minimum, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ok, failed, answers, i = 0, [], {}, 0
while i < minimum or not os.path.exists(stop):
    i += 1
    try:
        with socket.create_connection((vip, 80), timeout=5) as s:
            s.sendall(b'GET / HTTP/1.0\r\n\r\n')
            data = b''
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b'HTTP/1.0 200'):
            raise ValueError(data[:40])
        body = data.split(b'\r\n\r\n', 1)[-1].decode().strip()
        answers[body] = answers.get(body, 0) + 1
        ok += 1
    except Exception as exc:
        failed.append('%d: %s' % (i, exc))
print(json.dumps({'ok': ok, 'failed': failed, 'answers': answers}))
'''

# Signals the unit's main process (SIGNAL: KILL, TERM) in the middle of an apply, once the
# kernel holds more than AT of TOTAL services on ADDRESS: polls /proc/net/ip_vs, which is cheap.
KILLER = r'''
import os, signal, socket, subprocess, sys, time
address, at, total, unit, signum = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
needle = 'TCP  %s:' % socket.inet_aton(address).hex().upper()
deadline = time.monotonic() + 300
# The run's pid first (systemctl is slow on a loaded host), so the kill follows the count at once.
pid = 0
while pid <= 0 and time.monotonic() < deadline:
    pid = int(subprocess.run(['systemctl', 'show', '-p', 'MainPID', '--value', unit], capture_output=True,
                             text=True).stdout or 0)
    time.sleep(0.01)
if pid <= 0:  # never kill(0): that is our own process group
    sys.exit('the run never started')
count = 0
while time.monotonic() < deadline:
    with open('/proc/net/ip_vs') as handle:
        count = handle.read().count(needle)
    if count > at:
        break
    time.sleep(0.01)
else:
    sys.exit('the apply never started: %d services after 300 s' % count)
try:
    with open('/proc/%d/cmdline' % pid, 'rb') as handle:
        alive = b'netlb-ipvs' in handle.read()
except OSError:
    alive = False
if not alive:
    sys.exit('the run ended before it could be killed (%d services)' % count)
os.kill(pid, getattr(signal, 'SIG' + signum))
print(count)
'''


def wait_until(what, predicate, timeout=WITHIN, step=1.0):
    """predicate() until it returns something true; its last value otherwise (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('%s: not within %d s (last: %r)' % (what, timeout, value))
        time.sleep(step)


def ipvs(node):
    return sorted(node.run('ipvsadm -S -n').stdout.splitlines())


def ipvs_timeouts(node):
    return node.run('ipvsadm -L --timeout').stdout.strip()


def journal(node, since, prefix='result='):
    """The entry point's journal lines since a `date +%s.%N` of the node (its one line per
    run, or those starting with another prefix)."""
    out = node.run(['journalctl', '-q', '-o', 'cat', '-t', 'netlb-ipvs', '--since', '@%s' % since],
                   check=False).stdout
    return [line for line in out.splitlines() if line.startswith(prefix)]


def node_now(node):
    return node.run('date +%s.%N').stdout.strip()


def exposition(text):
    """name{labels} -> value of a Prometheus text exposition."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith('#'):
            name, value = line.rsplit(' ', 1)
            values[name] = float(value)
    return values


def metrics(node):
    """The textfile's name{labels} -> value."""
    return exposition(node.run(['cat', METRICS]).stdout)


def quiet(node):
    """The timer stopped and a run it started finished: each run after is one the test starts.
    A oneshot service is "activating" while it runs (is-active says no), and a start the
    timer queued is a job before it is a state: wait for both to be gone."""
    node.run('systemctl stop %s; while systemctl list-jobs --no-legend | grep -q %s || '
             '[ "$(systemctl show -p ActiveState --value %s)" = activating ]; do sleep 0.2; done'
             % (TIMER, UNIT, UNIT), timeout=600)


def write_json(node, path, document):
    node.run('cat > %s.tmp && mv %s.tmp %s' % (path, path, path), input=json.dumps(document))


def run_unit(node):
    """One run of the timer's service now (blocks until it ends), its journal line: one ssh."""
    out = node.run("since=$(date +%%s.%%N); systemctl start %s; journalctl -q -o cat -t netlb-ipvs --since @$since"
                   " | grep '^result=' | tail -n 1" % UNIT, check=False, timeout=600).stdout.strip()
    assert out, 'the run left no journal line'
    return out


def playbook(node, extra_inventory, playbook_path, extra_vars=None, check=True, options=()):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, 'collections'), ANSIBLE_ROLES_PATH=os.path.join(REPO, 'roles'))
    argv = [ANSIBLE_PLAYBOOK, '-i', node.inventory, '-i', str(extra_inventory), '-l', node.name, playbook_path]
    if extra_vars:
        argv += ['-e', json.dumps(extra_vars)]
    argv += list(options)
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=2400)
    if check:
        assert proc.returncode == 0, proc.stdout[-20000:]
    return proc


def role_play(node, inventory, tmp_path, variables, roles=('ipvs_reconcile',), vars_files=()):
    """These roles alone on the node (site.yml ran already), with these variables and these
    files of playbooks/vars/ (site.yml's: the modules' options the node config is made of).
    A role is a name or a play's role entry ({'role': ..., 'when': ...})."""
    play = tmp_path / 'roles.yml'
    play.write_text(json.dumps([{'name': 'roles', 'hosts': node.name, 'become': True, 'gather_facts': False,
                                 'vars_files': [os.path.join(REPO, 'playbooks', 'vars', name) for name in vars_files],
                                 'roles': [role if isinstance(role, dict) else {'role': role} for role in roles],
                                 'vars': variables}]))
    playbook(node, inventory, str(play))


@pytest.fixture(scope='module')
def api(kube_api_server):
    kube_api_server.reset()
    kube_api_server.load(os.path.join(DEMO, 'cluster.yaml'))
    kube_api_server.add({'apiVersion': 'v1', 'kind': 'Node',
                         'metadata': {'name': 'node1', 'labels': {'topology.kubernetes.io/zone': 'zone-a'}}})
    yield kube_api_server
    kube_api_server.reset()


@pytest.fixture(scope='module')
def inventory(lab_node, tmp_path_factory):
    path = tmp_path_factory.mktemp('reconcile') / 'groups.json'
    children = dict((group, {'hosts': {lab_node.name: {}}, 'vars': dict(variables, **RECONCILE)})
                    for group, variables in GROUPS.items())
    children['ipvs_nodes'] = {'hosts': {lab_node.name: {}}, 'vars': RECONCILE}
    path.write_text(json.dumps({'all': {'children': children}}))
    return path


@pytest.fixture(scope='module')
def node(lab_node, api, inventory, tmp_path_factory):
    """The node after site.yml, the timer running, the first timer run done."""
    lab_node.run(TEARDOWN, check=False)
    lab_node.run('mkdir -p %s /etc/netlb-ipvs' % REMOTE)
    with open(os.path.join(DEMO, 'backends.sh')) as handle:
        lab_node.run('cat > %s/backends.sh && chmod +x %s/backends.sh' % (REMOTE, REMOTE), input=handle.read())
    kubeconfig = api.write_kubeconfig(str(tmp_path_factory.mktemp('kubeconfig') / 'config'), host=VM_HOST)
    with open(kubeconfig) as handle:
        lab_node.run('umask 077 && cat > %s' % KUBECONFIG, input=handle.read())
    lab_node.run(SETUP, timeout=600)
    since = node_now(lab_node)
    playbook(lab_node, inventory, os.path.join(REPO, 'site.yml'))
    lab_node.site_started = since
    try:
        yield lab_node
    finally:
        lab_node.run(TEARDOWN, check=False)
        lab_node.run(KERNEL_TIMEOUTS, check=False)


@pytest.fixture(scope='module')
def converged(node):
    """The table, the dummy addresses and the packet rules as site.yml and the first
    timer run leave them."""
    wait_until('a timer run after site.yml', lambda: [line for line in journal(node, node.site_started)
                                                       if line.startswith('result=ok')])
    table = ipvs(node)
    return {
        'ipvs': table,
        'dummy': sorted(node.run('ip -br addr show kube-ipvs0').stdout.split()[2:]),
        'nft': node.run('nft list table inet netlb_ipvs').stdout,
    }


def test_site_yml_converges_and_installs_the_timer(node, converged):
    table = converged['ipvs']
    assert '-A -t %s:80 -s rr' % VIP in table
    assert '-a -t %s:80 -r %s:8080 -m -w 1' % (VIP, PODS[0]) in table
    assert '-A -t 10.96.0.20:80 -s rr' in table, 'the demo cluster\'s web Service is missing'
    assert FOREIGN in table
    assert node.run(['systemctl', 'is-active', TIMER]).stdout.strip() == 'active'
    config = json.loads(node.run('cat /etc/netlb-ipvs/reconcile.json').stdout)
    assert config['static']['services_file'] == SERVICES_FILE and config['kubernetes']['source'] == 'api'
    assert node.run('stat -c %a /etc/netlb-ipvs/reconcile.json').stdout.strip() == '600'
    # kube-proxy's timeouts set by ipvs_node; conn_reuse_mode left at the kernel's 1 on this 6.1 kernel.
    assert ipvs_timeouts(node) == IPVS_TIMEOUTS
    assert config['node']['ipvs_timeouts'] == {'tcp': '2h0m0s', 'tcp_fin': '0s', 'udp': '60s'}
    assert node.run('sysctl -n net.ipv4.vs.conn_reuse_mode').stdout.strip() == '1'
    assert 'conn_reuse_mode' not in node.run('cat /etc/sysctl.d/90-netlb-ipvs.conf').stdout
    # The sandbox: systemd-analyze's exposure (0 safest .. 10), the bound is 3.0.
    out = node.run(['systemd-analyze', 'security', '--no-pager', UNIT]).stdout
    exposure = float(re.search(r'Overall exposure level for \S+: ([0-9.]+)', out).group(1))
    print('systemd-analyze security %s: %.1f' % (UNIT, exposure))
    assert exposure <= 3.0, out[-3000:]
    found = metrics(node)
    assert found['netlb_ipvs_reconcile_last_run_success'] == 1
    assert found['netlb_ipvs_virtual_servers{table="static"}'] == 1


def test_check_diff_tells_what_would_change_and_touches_nothing(node, converged, inventory):
    """site.yml --check --diff with a third real server for the static VIP: the diff of the
    table and of the node config say so; the kernel and the config stay as they were."""
    config = node.run('sha1sum /etc/netlb-ipvs/reconcile.json %s' % SERVICES_FILE).stdout
    quiet(node)  # no tick may apply anything meanwhile
    try:
        proc = playbook(node, inventory, os.path.join(REPO, 'site.yml'), options=['--check', '--diff'],
                        extra_vars={'ipvs_virtual_servers': static_table(PODS)})
        assert '+-a -t %s:80 -r %s:8080 -m -w 1' % (VIP, PODS[2]) in proc.stdout, proc.stdout[-8000:]
        assert PODS[2] in proc.stdout.split('ipvs-services.json', 1)[-1], 'no diff of the static table file'
        assert ipvs(node) == converged['ipvs']
        assert node.run('sha1sum /etc/netlb-ipvs/reconcile.json %s' % SERVICES_FILE).stdout == config
    finally:
        node.run(['systemctl', 'start', TIMER])


def test_drift_of_every_kind_is_corrected_within_one_interval(node, converged):
    before = metrics(node)
    since = node_now(node)
    address = converged['dummy'][0]
    node.run(' && '.join([
        'ipvsadm -d -t %s:80 -r %s:8080' % (VIP, PODS[0]),  # a real server deleted by hand
        'ipvsadm -A -t 203.0.113.99:80 -s rr',  # a stray service inside the static scope
        'ipvsadm -A -t 10.96.99.99:80 -s rr',  # and one inside the service CIDR
        'ip addr del %s dev kube-ipvs0' % address,  # a dummy address removed
        'nft flush chain inet netlb_ipvs %s' % _a_chain(converged['nft']),  # packet rules deleted
        'sysctl -qw net.ipv4.vs.conntrack=0',  # a sysctl ipvs_node set
        KERNEL_TIMEOUTS,  # the IPVS timeouts it set
    ]))
    wait_until('the table corrected', lambda: ipvs(node) == converged['ipvs'])
    wait_until('the dummy address back', lambda: address in node.run('ip -br addr show kube-ipvs0').stdout)
    wait_until('the packet rules back', lambda: node.run('nft list table inet netlb_ipvs').stdout == converged['nft'])
    wait_until('the sysctl back', lambda: node.run('sysctl -n net.ipv4.vs.conntrack').stdout.strip() == '1')
    wait_until('the IPVS timeouts back', lambda: ipvs_timeouts(node) == IPVS_TIMEOUTS)
    assert FOREIGN in ipvs(node)
    lines = wait_until('a journal line naming the drift', lambda: [line for line in journal(node, since)
                                                                   if 'drift=' in line])
    assert 'result=ok' in lines[0], lines
    after = metrics(node)
    for part in ('node', 'static', 'kubernetes'):
        name = 'netlb_ipvs_reconcile_drift_corrections_total{part="%s"}' % part
        assert after[name] > before[name], (part, lines)


def _a_chain(nft_text):
    """A chain of the proxy's nft table that has rules."""
    return re.findall(r'chain (\w+) \{', nft_text)[0]


def test_ipvsadm_clear_is_undone(node, converged):
    node.run('ipvsadm -C')
    wait_until('the table back after ipvsadm -C', lambda: [line for line in ipvs(node) if line != FOREIGN]
               == [line for line in converged['ipvs'] if line != FOREIGN])
    node.run('ipvsadm -A -t 192.0.2.1:80 -s wrr')  # the foreign service is ipvsadm -C's loss, not ours
    assert ipvs(node) == converged['ipvs']


def test_an_endpointslice_change_reaches_the_kernel_within_one_interval(node, converged, api):
    path = '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-abc12'
    slice_ = api.get(path)
    assert slice_ is not None, sorted(p for p in api.objects if 'endpointslices' in p)
    original = json.loads(json.dumps(slice_))
    kept = [endpoint for endpoint in slice_['endpoints'] if endpoint['addresses'][0] != PODS[1]]
    assert len(kept) == len(slice_['endpoints']) - 1
    slice_['endpoints'] = kept
    api.add(slice_)
    gone = '-a -t 10.96.0.20:80 -r %s:8080 -m -w 1' % PODS[1]
    wait_until('web-2 gone from the web Service', lambda: gone not in ipvs(node))
    api.add(original)
    wait_until('web-2 back', lambda: ipvs(node) == converged['ipvs'])


def test_a_converged_kubernetes_node_is_checked_without_translating(node, converged):
    """The short way of a timer run (_k8s/converged.py) on the real kernel: once a whole sync
    found nothing to change, the next run's kernel read equals the mark and it stops before
    translating (a read that never equalled it would make every run whole, silently)."""
    wait_until('the node converged', lambda: ipvs(node) == converged['ipvs'])
    for _run in range(2):  # the first may be the whole sync that marks, after a timer run that changed something
        proc = node.run('netlb-ipvs reconcile --wait 60 --verbose', check=False, timeout=600)
    timings = [line for line in proc.stderr.splitlines() if line.startswith('timings kubernetes:')]
    assert proc.returncode == 0 and proc.stdout.startswith('result=ok'), (proc.stdout, proc.stderr)
    assert timings and 'converged_check=' in timings[0] and ' translate=' not in timings[0], proc.stderr
    assert ipvs(node) == converged['ipvs']
    # A short run lists the rules only when the ruleset's generation moved: a rule deleted
    # with nft (nothing else changed) must move it, so this run is whole and puts it back.
    # quiet(): no other run sees the deletion first.
    quiet(node)
    try:
        node.run('nft flush chain inet netlb_ipvs %s' % _a_chain(converged['nft']))
        proc = node.run('netlb-ipvs reconcile --wait 60 --verbose', check=False, timeout=600)
        timings = [line for line in proc.stderr.splitlines() if line.startswith('timings kubernetes:')]
        assert proc.returncode == 0 and timings and ' translate=' in timings[0], (proc.stdout, proc.stderr)
        assert node.run('nft list table inet netlb_ipvs').stdout == converged['nft']
    finally:
        node.run(['systemctl', 'start', TIMER])


def test_a_run_killed_in_the_middle_of_an_apply_is_converged_by_the_next(node, converged):
    total = 3000
    big = static_table(PODS[:2]) + [
        {'protocol': 'tcp', 'address': '203.0.113.20', 'port': port, 'scheduler': 'rr',
         'real_servers': [{'address': PODS[2], 'port': 8080, 'forwarding': 'masq'}]}
        for port in range(1000, 1000 + total)]
    quiet(node)
    node.run('cat > %s/killer.py' % REMOTE, input=KILLER)
    try:
        write_json(node, SERVICES_FILE, big)
        node.run(['systemctl', 'start', '--no-block', UNIT])
        at_kill = int(node.run(['python3', REMOTE + '/killer.py', '203.0.113.20', 10, total, UNIT, 'KILL'],
                               timeout=400).stdout)
        wait_until('the run gone', lambda: node.run(['systemctl', 'is-active', UNIT], check=False).stdout.strip()
                   in ('inactive', 'failed'))
        partial = _count(node, '203.0.113.20')
        assert 10 < at_kill <= partial < total, (at_kill, partial)  # killed in the middle of the apply
        line = run_unit(node)  # the next run, as the timer would start it
        assert line.startswith('result=ok'), line
        assert _count(node, '203.0.113.20') == total
    finally:
        write_json(node, SERVICES_FILE, static_table(PODS[:2]))
        run_unit(node)
        node.run(['systemctl', 'start', TIMER])
    assert ipvs(node) == converged['ipvs']


def _count(node, address):
    return sum(1 for line in node.run('ipvsadm -S -n').stdout.splitlines() if line.startswith('-A -t %s:' % address))


@pytest.mark.parametrize('what, break_it, error', [
    ('broken services file', lambda node, api: node.run('echo "[{" > %s' % SERVICES_FILE), 'config: '),
    ('unreachable API', lambda node, api: api.fault('close', path=None, times=None), 'cannot read the cluster'),
    ('empty answer from the API', lambda node, api: api.fault('empty', path='/api/v1/services', times=None),
     'refusing to delete'),
])
def test_bad_input_leaves_the_table_and_counts_a_failure(node, converged, api, what, break_it, error):
    quiet(node)
    try:
        before = metrics(node)['netlb_ipvs_reconcile_failures_total']
        break_it(node, api)
        line = run_unit(node)
        assert line.startswith('result=failed') and error in line, line
        assert ipvs(node) == converged['ipvs']
        assert metrics(node)['netlb_ipvs_reconcile_failures_total'] == before + 1
    finally:
        api.faults[:] = []
        write_json(node, SERVICES_FILE, static_table(PODS[:2]))
        node.run(['systemctl', 'start', TIMER])
    assert run_unit(node).startswith('result=ok')


def test_no_request_is_dropped_while_20_runs_churn_the_real_servers(node, converged):
    """A client loop through the VIP while each of 20 runs of the timer's service swaps one
    real server for another (one backend is always common to both tables): every request
    answered. The runs are started back to back on the node (one ssh for all)."""
    quiet(node)
    node.run('cat > %s/client.py' % REMOTE, input=CLIENT)
    for turn in range(3):
        write_json(node, '%s/table%d.json' % (REMOTE, turn), static_table((PODS[turn], PODS[(turn + 1) % 3])))
    stop = REMOTE + '/client.stop'
    node.run(['rm', '-f', stop])
    client = subprocess.Popen(node.ssh_argv('ip netns exec rc-cli python3 %s/client.py %s 500 %s' % (REMOTE, VIP, stop)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    try:
        since = node_now(node)
        node.run('for turn in $(seq 0 19); do cp %s/table$((turn %% 3)).json %s; systemctl start %s; done; touch %s'
                 % (REMOTE, SERVICES_FILE, UNIT, stop), timeout=900)
        runs = journal(node, since)
        out, err = client.communicate(timeout=900)
    finally:
        if client.poll() is None:
            client.kill()
        write_json(node, SERVICES_FILE, static_table(PODS[:2]))
        run_unit(node)
        node.run(['systemctl', 'start', TIMER])
    assert len(runs) == 20 and all(line.startswith('result=ok') for line in runs), runs
    assert sum('static=' in line and 'static=none' not in line for line in runs) >= 19, runs
    result = json.loads(out)
    assert result['failed'] == [] and result['ok'] >= 500, (result, err)
    assert len(result['answers']) == 3, result  # every pod served some of them


def test_reboot_restores_modules_sysctls_and_table_within_one_interval(node, converged):
    """Also the lab's own promise (test_lab.py): a reboot keeps the disk and brings ssh back."""
    node.run('echo kept > /var/tmp/netlb-reboot-marker')
    boot = node.run('cat /proc/sys/kernel/random/boot_id').stdout
    node.reboot()
    assert node.run('cat /proc/sys/kernel/random/boot_id').stdout != boot
    assert node.run('cat /var/tmp/netlb-reboot-marker; rm /var/tmp/netlb-reboot-marker').stdout.strip() == 'kept'
    wait_until('the table back after the reboot', lambda: ipvs(node) == [line for line in converged['ipvs']
                                                                          if line != FOREIGN], timeout=120)
    assert node.run('lsmod | grep -c "^ip_vs "').stdout.strip() == '1'
    assert node.run('sysctl -n net.ipv4.vs.conntrack net.ipv4.ip_forward').stdout.split() == ['1', '1']
    # The kernel forgot kube-proxy's timeouts: only the timer run sets them again.
    wait_until('the IPVS timeouts back after the reboot', lambda: ipvs_timeouts(node) == IPVS_TIMEOUTS)
    assert sorted(node.run('ip -br addr show kube-ipvs0').stdout.split()[2:]) == converged['dummy']
    assert node.run('nft list table inet netlb_ipvs').stdout == converged['nft']


PULL_REPO = '/srv/netlb-fleet.git'
PULL_WORK = REMOTE + '/fleet'
PULL_VIP = '203.0.113.30'
# The fleet's repository as a test keeps it: this collection, an inventory naming the node
# (ansible-pull connects locally), and a playbook with the node's table in one vars file.
PULL_PLAYBOOK = [{'name': 'The fleet\'s static table', 'hosts': 'all', 'gather_facts': False, 'vars_files': ['table.yml'],
                  'tasks': [{'name': 'The table', 'netlb.ipvs.ipvs_virtual_server': {
                      'services': '{{ fleet_table }}', 'scope': ['%s/32' % PULL_VIP]}}]}]
PULL_SETUP = '''
set -e
export GNUPGHOME={work}.gnupg HOME=/root
rm -rf {repo} {work} $GNUPGHOME; mkdir -p $GNUPGHOME; chmod 700 $GNUPGHOME
gpg --batch --quiet --passphrase '' --quick-gen-key 'netlb fleet <fleet@example.invalid>' ed25519 sign never
git init -q --bare -b main {repo}
git init -q -b main {work}
cd {work}
git config user.name fleet; git config user.email fleet@example.invalid
git config user.signingkey "$(gpg --list-keys --with-colons | awk -F: '/^fpr/ {{print $10; exit}}')"
git remote add origin {repo}
mkdir {work}/collections; mv {remote}/pull-src/ansible_collections {work}/collections/
printf '[defaults]\ncollections_path = ./collections\n' > ansible.cfg
echo '{{"all": {{"hosts": {{"{node}": {{"ansible_python_interpreter": "/usr/bin/python3"}}}}}}}}' > hosts.json
cat > pull.yml
'''


def commit_table(node, servers, signed):
    """Commit (signed or not) and push a table of PULL_VIP with these real servers."""
    table = json.dumps({'fleet_table': [{'protocol': 'tcp', 'address': PULL_VIP, 'port': 80, 'real_servers': [
        {'address': address, 'port': 8080, 'forwarding': 'masq'} for address in servers]}]})
    node.run("cd {work} && export GNUPGHOME={work}.gnupg HOME=/root && echo '{table}' > table.yml && git add -A && "
             "git commit -q {sign} -m 'table: {servers}' && git push -q origin main".format(
                 work=PULL_WORK, table=table, sign='-S' if signed else '--no-gpg-sign', servers=' '.join(servers)))


def pull_once(node):
    """One run of the pull service now; its journal line (one ssh)."""
    out = node.run("since=$(date +%s.%N); systemctl start netlb-ipvs-pull.service; journalctl -q -o cat"
                   " -t netlb-ipvs --since @$since | grep '^result=' | tail -n 1", check=False, timeout=900)
    return out.stdout.strip()


def test_pull_mode_follows_a_git_repository_and_refuses_unsigned_commits(node, inventory, tmp_path):
    node.ship_collection(REMOTE + '/pull-src')
    node.run(PULL_SETUP.format(repo=PULL_REPO, work=PULL_WORK, remote=REMOTE, node=node.name),
             input=json.dumps(PULL_PLAYBOOK), timeout=600)
    key = node.run('GNUPGHOME=%s.gnupg gpg --armor --export' % PULL_WORK).stdout
    assert 'BEGIN PGP PUBLIC KEY BLOCK' in key
    commit_table(node, [PODS[0]], signed=True)
    # Not site.yml again: ipvs_node's variables (the node config's kernel part; its tasks ran
    # with site.yml) and ipvs_reconcile; the fleet's playbook brings the table.
    role_play(node, inventory, tmp_path, {
        'ipvs_reconcile_mode': 'pull', 'ipvs_reconcile_repo_url': 'file://' + PULL_REPO,
        'ipvs_reconcile_pull_playbook': 'pull.yml', 'ipvs_reconcile_pull_inventory': 'hosts.json',
        'ipvs_reconcile_verify_commit': True, 'ipvs_reconcile_gpg_public_keys': [key],
        'ipvs_reconcile_kubernetes': False, 'ipvs_reconcile_static': False},
        roles=({'role': 'ipvs_node', 'when': False}, 'ipvs_reconcile'))
    assert node.run(['systemctl', 'is-active', 'netlb-ipvs-pull.timer']).stdout.strip() == 'active'
    out = node.run(['systemd-analyze', 'security', '--no-pager', 'netlb-ipvs-pull.service']).stdout
    print('systemd-analyze security netlb-ipvs-pull.service: %s'
          % re.search(r'Overall exposure level for \S+: ([0-9.]+)', out).group(1))
    assert node.run(['systemctl', 'is-enabled', TIMER], check=False).stdout.strip() != 'enabled'
    line = pull_once(node)
    assert line.startswith('result=ok'), line
    table = ipvs(node)
    assert '-a -t %s:80 -r %s:8080 -m -w 1' % (PULL_VIP, PODS[0]) in table
    commit_table(node, [PODS[2]], signed=False)  # an unsigned one is refused, the table stays
    line = pull_once(node)
    assert line.startswith('result=failed') and 'ansible-pull failed' in line, line
    assert ipvs(node) == table


# Watch mode (issue 21): `netlb-ipvs watch` as the ipvs_reconcile role installs it, on the
# node converged above, against the stand-in API server's watch streams. A full resync only
# every 10 min: whatever reaches the kernel in between came by a watch. Each case starts
# from the same cluster and table (watch_case), whatever the case before it left.
WATCH_UNIT = 'netlb-ipvs-watch.service'
WATCH = {'ipvs_reconcile_mode': 'watch', 'ipvs_reconcile_interval': '10min', 'ipvs_reconcile_min_sync': '1s'}
STATUS_ADDRESS = '127.0.0.1:10266'  # the watcher's /healthz and /metrics (its --listen default)
# Generous, never a performance goal: min_sync is 1 s; an emulated node under a loaded host
# takes its share. After the API was away, a watch's reconnect backoff too: up to 30 s,
# jittered up to 45 s.
WATCH_WITHIN = 30
RECONNECT_WITHIN = 75
WEB = '10.96.0.20'
WEB_SLICE = '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-abc12'
LB_SLICE = '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-lb-q8w4d'
HEALTH_CHECK_PORT = 31999  # web-lb's healthCheckNodePort (demo/cluster.yaml)
STICKY = ('/api/v1/namespaces/default/services/web-sticky',
          '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-sticky-m3n9v')
STICKY_SERVICE = 'TCP 10.96.0.23:80'
# What the EndpointSlice mirroring controller makes of the Endpoints of `legacy` (no selector).
LEGACY_SLICE = {
    'apiVersion': 'discovery.k8s.io/v1', 'kind': 'EndpointSlice', 'addressType': 'IPv4',
    'metadata': {'name': 'legacy-mirrored', 'namespace': 'default', 'labels': {
        'kubernetes.io/service-name': 'legacy',
        'endpointslice.kubernetes.io/managed-by': 'endpointslicemirroring-controller.k8s.io'}},
    'ports': [{'name': 'http', 'port': 8080, 'protocol': 'TCP'}],
    'endpoints': [{'addresses': [PODS[1]], 'conditions': {'ready': True}, 'nodeName': 'node1'}]}
# web's pods as endpoints of its slice (web-3 runs on "node2", demo/backends.sh).
NODE_OF = {PODS[0]: 'node1', PODS[1]: 'node1', PODS[2]: 'node2'}

# On the node, one process for a whole case: reads a JSON line {"TCP 10.96.0.20:80":
# ["10.244.1.11:8080", ...] or null}, answers "ready", then "done" once /proc/net/ip_vs
# has each of those virtual services sending new connections (weight > 0) to exactly those
# real servers (null: the service is gone), or "timeout". Reading /proc is cheap: the
# watcher keeps the guest's CPU, and no ssh starts per change.
WAITER = r'''
import json, socket, sys, time
def hexed(text):
    host, port = text.rsplit(':', 1)
    return '%s:%04X' % (socket.inet_aton(host).hex().upper(), int(port))
def serving():
    services, current = {}, None
    with open('/proc/net/ip_vs') as handle:
        for line in handle:
            words = line.split()
            if words and words[0] in ('TCP', 'UDP', 'SCTP'):
                current = services.setdefault(words[0] + ' ' + words[1], set())
            elif len(words) > 3 and words[0] == '->' and current is not None and words[3].isdigit():
                if int(words[3]) > 0:
                    current.add(words[1])
    return services
timeout = float(sys.argv[1])
for line in sys.stdin:
    wanted = dict((proto + ' ' + hexed(address), None if servers is None else set(hexed(s) for s in servers))
                  for proto, address, servers in ((key.split()[0], key.split()[1], value)
                                                  for key, value in json.loads(line).items()))
    print('ready', flush=True)
    end = time.monotonic() + timeout
    while True:
        now = serving()
        if all(now.get(key) == servers for key, servers in wanted.items()):
            print('done', flush=True)
            break
        if time.monotonic() > end:
            print('timeout %r' % dict((key, sorted(now.get(key) or ())) for key in wanted), flush=True)
            break
        time.sleep(0.05)
'''


def web_endpoints(pods):
    return [{'addresses': [pod], 'conditions': {'ready': True, 'serving': True, 'terminating': False},
             'nodeName': NODE_OF[pod]} for pod in pods]


def web_serves(pods):
    """For the waiter: web's port 80 sends new connections to exactly these pods (one removed
    while it has connections stays, drained: weight 0)."""
    return {'TCP %s:80' % WEB: ['%s:8080' % pod for pod in pods]}


def serving(table):
    """An `ipvs()` table without the drained real servers (weight 0): they go once their
    connections have, at the next full resync (_watch/table.py)."""
    return [line for line in table if not line.endswith(' -w 0')]


class Waiter(object):
    """The node's WAITER over one ssh: until(wanted, change) is the seconds from change()
    (made on the controller) until the kernel holds what is wanted."""

    def __init__(self, node, timeout):
        node.run('cat > %s/waiter.py' % REMOTE, input=WAITER)
        self.timeout = timeout
        self.proc = subprocess.Popen(node.ssh_argv('python3 -u %s/waiter.py %d' % (REMOTE, timeout)),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     universal_newlines=True)

    def until(self, wanted, change):
        self.proc.stdin.write(json.dumps(wanted) + '\n')
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == 'ready', self.close()
        begun = time.monotonic()
        change()
        line = self.proc.stdout.readline().strip()
        seconds = time.monotonic() - begun
        assert line == 'done', '%s: not within %d s of the change: %s' % (wanted, self.timeout, line or self.close())
        return seconds

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.communicate()


@pytest.fixture
def waiter(watching):
    waiting = Waiter(watching, WATCH_WITHIN)
    yield waiting
    waiting.close()


def fetch(node, url, netns=None):
    """(HTTP status, body) of a GET with curl on the node (in netns if given)."""
    argv = (['ip', 'netns', 'exec', netns] if netns else []) + [
        'curl', '-s', '-m', '10', '-w', '\\n%{http_code}', url]
    body, _sep, code = node.run(argv, check=False).stdout.rpartition('\n')
    return int(code or 0), body


def scrape(node):
    """The watcher's /metrics: name{labels} -> value."""
    code, text = fetch(node, 'http://%s/metrics' % STATUS_ADDRESS)
    assert code == 200, text
    return exposition(text)


def restart_count(node, why):
    return scrape(node).get('netlb_ipvs_watch_restarts_total{why="%s"}' % why, 0)


def watcher_synced(node, since):
    """Whether the watcher started since then has logged a sync: a journal line after its
    "watching" line (a timer run before it logs the same kind of line)."""
    lines = journal(node, since, prefix='')
    begun = [index for index, line in enumerate(lines) if line.startswith('watching ')]
    return bool(begun) and any(line.startswith('result=') for line in lines[begun[-1]:])


def _stored(obj):
    """An API object without what the server sets on each write."""
    return dict(obj, metadata=dict((key, value) for key, value in obj['metadata'].items()
                                   if key not in ('resourceVersion', 'uid')))


@pytest.fixture(scope='module')
def watching(node, converged, api, inventory, tmp_path_factory):
    """The node in watch mode: its test set-up made again (the reboot above took the pods,
    the client's namespace and the table), then role ipvs_reconcile with mode watch, not the
    whole site.yml again; once the watcher's first sync converged the node. The mode-off test
    after the watch tests removes the unit. node.cluster: the API's objects then.

    The cluster gets the slice the EndpointSlice mirroring controller makes of the selector-less
    Service `legacy`'s Endpoints, as a real cluster has it: the watcher reads slices only, a
    timer run also a selector-less Service's Endpoints when it has no slice at all."""
    node.run(SETUP, timeout=600)
    api.add(LEGACY_SLICE)
    since = node_now(node)
    # ipvs_node's variables (the node config's kernel part), not its tasks: site.yml ran them.
    role_play(node, inventory, tmp_path_factory.mktemp('watch'), WATCH,
              roles=({'role': 'ipvs_node', 'when': False}, 'ipvs_reconcile'),
              vars_files=('k8s_service_proxy.yml', 'ipvs_virtual_server.yml'))
    assert node.run(['systemctl', 'is-active', WATCH_UNIT]).stdout.strip() == 'active'
    # The timer made the same table: wait for the watcher's own first sync.
    wait_until('the watcher\'s first sync', lambda: watcher_synced(node, since))
    wait_until('the watcher\'s first sync converged the node', lambda: ipvs(node) == converged['ipvs'])
    node.watch_started = since
    node.cluster = dict((path, api.get(path)) for path in sorted(api.objects))
    return node


@pytest.fixture
def watch_case(watching, converged, api):
    """Before each watch case: the API up with the cluster as the watcher first synced it
    (what a case before changed is put back, by the watch), and the node serving that."""
    node = watching
    api.faults[:] = []
    api.up()
    for path, obj in node.cluster.items():
        now = api.get(path)
        if now is None or _stored(now) != _stored(obj):
            api.add(obj)
    wait_until('the node serving the cluster again', lambda: serving(ipvs(node)) == converged['ipvs'],
               timeout=RECONNECT_WITHIN, step=0.5)
    return node


def test_watch_mode_converges_the_node_and_an_endpointslice_change_reaches_the_kernel(watch_case, waiter,
                                                                                       converged, api):
    """The watcher's first sync (full) converges the node as site.yml did; then an
    EndpointSlice change in the API reaches the kernel by the watch (the next resync is
    10 min away) and the change back restores the table."""
    node = watch_case
    started = journal(node, node.watch_started, prefix='watching ')
    assert started and 'min_sync=1.0s interval=600.0s status=http://%s/' % STATUS_ADDRESS in started[-1], started
    assert [line for line in journal(node, node.watch_started) if line.startswith('result=ok')]
    original = api.get(WEB_SLICE)['endpoints']
    assert web_endpoints(PODS[:2]) == [dict((key, value) for key, value in endpoint.items() if key != 'targetRef')
                                       for endpoint in original]
    seconds = waiter.until(web_serves(PODS[:1]), lambda: api.update(
        WEB_SLICE, lambda obj: obj.update(endpoints=original[:1])))
    print('watch: an EndpointSlice change (a pod gone) reached the kernel in %.2f s' % seconds)
    assert ipvs(node) == [line for line in converged['ipvs'] if not line.startswith('-a -t %s:' % WEB)
                          or PODS[1] not in line]
    seconds = waiter.until(web_serves(PODS[:2]), lambda: api.update(
        WEB_SLICE, lambda obj: obj.update(endpoints=original)))
    print('watch: an EndpointSlice change (a pod back) reached the kernel in %.2f s' % seconds)
    assert ipvs(node) == converged['ipvs']


def test_watch_survives_the_api_going_away_a_410_and_a_relist(watch_case, converged, api):
    """The API goes away: every watch breaks off and reconnects with backoff, the table and
    the health check stay as they were (nothing wiped, nothing applied); a change made
    meanwhile arrives once it is back (the watches resume where they were). Then it goes
    away again and comes back without the versions the watches hold (its watch cache
    restarted): 410 Gone, each stream lists again, and the relist brings both a change and
    a deletion made meanwhile."""
    node = watch_case
    waiting = Waiter(node, RECONNECT_WITHIN)
    original = api.get(WEB_SLICE)
    gone_before = restart_count(node, 'gone')
    since = node_now(node)
    try:
        api.down()
        api.update(WEB_SLICE, lambda obj: obj.update(endpoints=original['endpoints'][:1]))
        # Each stream has failed twice (it keeps trying); the table and the health check as they were.
        wait_until('every watch reconnecting', lambda: all(
            len([line for line in journal(node, since, prefix='watch ') if line.startswith('watch %s: ' % stream)]) >= 2
            for stream in ('Services', 'EndpointSlices', 'Node')), timeout=WATCH_WITHIN, step=0.5)
        out = node.run('ipvsadm -S -n; curl -s -o /dev/null -w "health=%%{http_code}" http://127.0.0.1:%d/'
                       % HEALTH_CHECK_PORT, check=False).stdout
        assert sorted(out.splitlines()[:-1]) == converged['ipvs'] and out.endswith('health=200'), out
        seconds = waiting.until(web_serves(PODS[:1]), api.up)
        print('watch: the API back, the change made meanwhile reached the kernel in %.2f s' % seconds)
        print('watch: reconnect lines while the API was away: %d' % len(journal(node, since, prefix='watch ')))
        assert restart_count(node, 'gone') == gone_before  # resumed from where they were, no relist
        # Away again, and back with a watch cache that starts after every version held.
        api.down()
        api.update(WEB_SLICE, lambda obj: obj.update(endpoints=original['endpoints']))
        for path in STICKY:
            api.remove(path)
        api.compact()
        wanted = dict(web_serves(PODS[:2]), **{STICKY_SERVICE: None})
        seconds = waiting.until(wanted, api.up)
        print('watch: after a 410 Gone, the relist brought the changes in %.2f s' % seconds)
        # Each of the three streams met 410 Gone and listed again (not all at the same moment).
        wait_until('every stream relisted', lambda: restart_count(node, 'gone') >= gone_before + 3,
                   timeout=RECONNECT_WITHIN, step=0.5)
    finally:
        api.up()
        waiting.close()
    assert [line for line in journal(node, since, prefix='watch ') if '410 Gone' in line and 'listing again' in line]
    expected = [line for line in converged['ipvs'] if '10.96.0.23:' not in line and '192.0.2.50:' not in line]
    assert len(expected) < len(converged['ipvs']) and ipvs(node) == expected
    assert all(line.startswith('result=ok') for line in journal(node, since)), journal(node, since)


def test_watch_sigterm_in_the_middle_of_a_sync_loses_nothing(watch_case, converged):
    """SIGTERM while the watcher's first sync applies a static table of 1,000 services: the
    sync finishes (every service in the kernel, a journal line), the process ends by itself
    (exit 0), and a one-shot reconcile of the same config finds nothing to change (the table
    is the desired one). The next start converges the node (the big table gone again).
    For the case, a runtime drop-in turns the unit's Restart=always off: the ended process
    stays the unit's last one (a `systemctl stop` after the signal raced the restart 5 s
    later, and took the new process, still starting, for the one that ended)."""
    node = watch_case
    total = 1000
    big = static_table(PODS[:2]) + [
        {'protocol': 'tcp', 'address': '203.0.113.20', 'port': port, 'scheduler': 'rr',
         'real_servers': [{'address': PODS[2], 'port': 8080, 'forwarding': 'masq'}]}
        for port in range(1000, 1000 + total)]
    drop_in = '/run/systemd/system/%s.d/netlb-test-no-restart.conf' % WATCH_UNIT
    node.run(['systemctl', 'stop', WATCH_UNIT])
    node.run('cat > %s/killer.py' % REMOTE, input=KILLER)
    try:
        node.run('mkdir -p $(dirname {0}) && printf "[Service]\\nRestart=no\\n" > {0} && systemctl daemon-reload'
                 .format(drop_in))
        write_json(node, SERVICES_FILE, big)
        since = node_now(node)
        node.run(['systemctl', 'start', WATCH_UNIT])
        at_term = int(node.run(['python3', REMOTE + '/killer.py', '203.0.113.20', 10, total, WATCH_UNIT, 'TERM'],
                               timeout=400).stdout)
        wait_until('the watcher ending by itself', lambda: node.run(
            ['systemctl', 'is-active', WATCH_UNIT], check=False).stdout.strip() in ('inactive', 'failed'), timeout=400)
        ended = dict(line.split('=', 1) for line in node.run(
            ['systemctl', 'show', '-p', 'ExecMainCode', '-p', 'ExecMainStatus', WATCH_UNIT]).stdout.split())
        assert ended == {'ExecMainCode': '1', 'ExecMainStatus': '0'}, ended  # CLD_EXITED, 0: not killed by it
        assert 10 < at_term < total, at_term  # signalled in the middle of the apply
        assert _count(node, '203.0.113.20') == total  # and the apply finished
        lines = journal(node, since)
        assert len(lines) == 1 and lines[0].startswith('result=ok'), lines
        assert 'static_table=%d/' % (total + 1) in lines[0], lines
        assert journal(node, since, prefix='stopped: ')
        table = ipvs(node)
        proc = node.run('netlb-ipvs reconcile --wait 60', check=False, timeout=600)
        assert proc.returncode == 0 and proc.stdout.startswith('result=ok') and ' changes=0 ' in proc.stdout, (
            proc.stdout, proc.stderr)
        assert ipvs(node) == table
    finally:
        node.run('rm -f %s && systemctl daemon-reload' % drop_in, check=False)
        write_json(node, SERVICES_FILE, static_table(PODS[:2]))
        node.run(['systemctl', 'restart', WATCH_UNIT])
    wait_until('the next start converged the node', lambda: ipvs(node) == converged['ipvs'], timeout=120)


def test_watch_serves_health_check_ports_healthz_and_metrics(watch_case, converged, api):
    """web-lb (externalTrafficPolicy: Local) has one ready endpoint on this node: its
    healthCheckNodePort answers 200 and kube-proxy's body; when it is not ready, 503 (the
    load balancer stops sending this node its traffic); ready again, 200. /healthz and
    /metrics answer on the loopback address only; the per-Service counters count the
    connections of requests through a Service."""
    node = watch_case
    url = 'http://127.0.0.1:%d/' % HEALTH_CHECK_PORT

    def body(local):
        return {'service': {'namespace': 'default', 'name': 'web-lb'}, 'localEndpoints': local,
                'serviceProxyHealthy': True}

    wait_until('the health check port answering', lambda: fetch(node, url)[0] == 200, step=0.5)
    code, text = fetch(node, url)
    assert (code, json.loads(text)) == (200, body(1)), text
    original = api.get(LB_SLICE)['endpoints']
    assert [endpoint['nodeName'] for endpoint in original] == ['node1', 'node2']
    unready = json.loads(json.dumps(original))
    unready[0]['conditions'] = {'ready': False, 'serving': True, 'terminating': True}
    api.update(LB_SLICE, lambda obj: obj.update(endpoints=unready))
    wait_until('503 once the local endpoint is not ready', lambda: fetch(node, url)[0] == 503, step=0.5)
    code, text = fetch(node, url)
    assert (code, json.loads(text)) == (503, body(0)), text
    api.update(LB_SLICE, lambda obj: obj.update(endpoints=original))
    wait_until('200 once it is ready again', lambda: fetch(node, url)[0] == 200, step=0.5)
    # The status address: loopback only (nothing listens on another address of that port).
    listening = node.run("ss -Hltn 'sport = :10266'").stdout.split()
    assert [word for word in listening if word.endswith(':10266')] == [STATUS_ADDRESS], listening
    code, text = fetch(node, 'http://%s/healthz' % STATUS_ADDRESS)
    health = json.loads(text)
    assert code == 200 and health['nodeEligible'] is True and set(health) == {
        'lastUpdated', 'currentTime', 'nodeEligible'}, text
    # Per-Service traffic from the kernel's counters: 5 requests through web's cluster IP.
    series = ('netlb_ipvs_service_connections_total{namespace="default",name="web",kind="cluster_ip",'
              'protocol="tcp",address="%s",port="80"}' % WEB)
    before = scrape(node)
    assert before['netlb_ipvs_watch_syncs_total{result="ok"}'] >= 3
    assert before['netlb_ipvs_watch_table{what="virtual_services"}'] == len(
        [line for line in converged['ipvs'] if line.startswith('-A ') and line != FOREIGN and VIP not in line])
    for _request in range(5):
        code, text = fetch(node, 'http://%s/' % WEB, netns='rc-cli')
        assert code == 200 and text.startswith('hello from web-'), (code, text)
    # The kernel sums its per-CPU counters every 2 s (its rate estimator): not at once.
    wait_until('5 connections counted', lambda: scrape(node).get(series, 0) - before.get(series, 0) == 5,
               timeout=WATCH_WITHIN)


def test_watch_no_request_is_dropped_while_20_endpoint_changes_roll_through(watch_case, waiter, converged, api):
    """A client loop through web's cluster IP (each request a new connection) while 20
    EndpointSlice changes, each waited for in the kernel, swap web's pods (two of three;
    one is common to each pair in turn, so one is ready at all times): every request
    answered, by every pod in turn. Last of the watch cases: it leaves drained real servers."""
    node = watch_case
    node.run('cat > %s/client.py' % REMOTE, input=CLIENT)
    stop = REMOTE + '/client.stop'
    node.run(['rm', '-f', stop])
    since = node_now(node)
    client = subprocess.Popen(node.ssh_argv('ip netns exec rc-cli python3 %s/client.py %s 500 %s'
                                            % (REMOTE, WEB, stop)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    took = []
    try:
        for turn in range(1, 21):  # turn 0 is the slice as it is
            pods = (PODS[turn % 3], PODS[(turn + 1) % 3])
            took.append(waiter.until(web_serves(pods), lambda pods=pods: api.update(
                WEB_SLICE, lambda obj: obj.update(endpoints=web_endpoints(pods)))))
        node.run(['touch', stop])
        out, err = client.communicate(timeout=900)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    took.sort()
    print('watch: 20 EndpointSlice changes reached the kernel in %.2f s min, %.2f s median, %.2f s max'
          % (took[0], took[10], took[-1]))
    result = json.loads(out)
    assert result['failed'] == [] and result['ok'] >= 500, (result, err)
    assert sorted(result['answers']) == ['hello from web-%d' % index for index in (1, 2, 3)], result
    syncs = [line for line in journal(node, since) if 'kubernetes=' in line and 'kubernetes=none' not in line]
    assert len(syncs) >= 20 and all(line.startswith('result=ok') for line in syncs), syncs
    assert not [line for line in syncs if 'drift=' in line], syncs  # a new input each, never drift


def test_mode_off_removes_the_units_and_leaves_the_table(node, inventory, tmp_path):
    table = ipvs(node)
    role_play(node, inventory, tmp_path, {'ipvs_reconcile_mode': 'off'})
    units = node.run("systemctl list-unit-files 'netlb-ipvs*' --no-legend", check=False).stdout
    assert units.strip() == '', units
    assert node.run("systemctl list-units 'netlb-ipvs*' --all --no-legend", check=False).stdout.strip() == ''
    assert ipvs(node) == table
