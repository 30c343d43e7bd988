# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The hand-over from kube-proxy to k8s_service_proxy on a real kernel (the session's lab node).

The node is made to look as kube-proxy (IPVS mode) leaves a node of demo/cluster.yaml:
the table k8s_service_proxy computes for it (apply=false, once per module) laid down by hand
with `ipvsadm -R`, the Service addresses on a dummy kube-ipvs0 with `ip addr add` - not
through the module -, kube-proxy's iptables chains, ipsets and nftables table next to an
operator's chain and set, and a stand-in kube-proxy running from the unit the kube_proxy
role wrote (once per module). Then, in one playbook: k8s_service_proxy and
k8s_kube_proxy_leftovers refused while kube-proxy runs, the role's kube_proxy_state=absent
stops it, the leftovers still refused (k8s_service_proxy has not converged), and
k8s_service_proxy adopts the node: no IPVS action, `ipvsadm -S -n` byte-identical before
and after, and the leftovers' --check --diff touching nothing. Then the same hand-over
through playbooks/migrate-from-kube-proxy.yml itself with migrate_remove_leftovers=true
(the leftovers go last and nothing else does), and that playbook stopping where an extra
virtual service in the Service CIDR makes the table change, before any leftover goes.

TCG is slow (each ansible run costs tens of seconds there): each test is one
ansible-playbook run, with snapshots of the node between its tasks.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.vm

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ANSIBLE = os.path.join(os.path.dirname(sys.executable), 'ansible')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
REMOTE = '/var/tmp/netlb-handover'
CLUSTER = REMOTE + '/cluster.yaml'
BINARY = '/usr/local/bin/kube-proxy-stand-in'
# The Molecule scenario's stand-in (molecule/default/files/kube-proxy-stand-in) execs
# `sleep` and drops its arguments, so no detector takes it for kube-proxy; this one keeps
# the name (argv[0]) and the unit's --config flag, so the module's guard sees a kube-proxy
# in IPVS mode (its config file says so) until the role stops it.
STAND_IN = ('#!/bin/bash\n# Plays kube-proxy in test_handover.py only (waits like a daemon).\n'
            'exec -a kube-proxy python3 -c "import time; time.sleep(10 ** 9)" "$@"\n')
ROLE_VARS = {'kube_proxy_binary': BINARY, 'kube_proxy_mode': 'ipvs', 'kube_proxy_hostname_override': 'node1',
             'kube_proxy_cluster_cidr': '10.244.0.0/16'}
PROXY_ARGS = {'source': 'manifests', 'path': CLUSTER, 'node_name': 'node1', 'service_cidrs': ['10.96.0.0/12'],
              'cluster_cidrs': ['10.244.0.0/16'], 'families': ['ipv4'],
              'external_ips_allowed_cidrs': ['192.0.2.50/32']}  # web-sticky's, as kube-proxy served it

# Back to a node without kube-proxy's table and leftovers; the role's unit and config, and the
# files the fixture put there, stay.
RESET = '''
systemctl disable --now kube-proxy 2>/dev/null
rm -rf /var/lib/netlb-ipvs
ipvsadm -C 2>/dev/null; ip link del kube-ipvs0 2>/dev/null
nft delete table inet netlb_ipvs 2>/dev/null
nft delete table ip kube-proxy 2>/dev/null
if command -v iptables >/dev/null; then
  for table in nat filter mangle; do iptables -t $table -F; iptables -t $table -X; done
  iptables -P FORWARD ACCEPT
fi 2>/dev/null
command -v ipset >/dev/null && ipset destroy 2>/dev/null
true
'''
TEARDOWN = RESET + '''
rm -f /etc/systemd/system/kube-proxy.service; systemctl daemon-reload
rm -rf /var/lib/kube-proxy {binary} {remote}
true
'''.format(binary=BINARY, remote=REMOTE)
PROXY = 'netlb.ipvs.k8s_service_proxy'
LEFTOVERS = 'netlb.ipvs.k8s_kube_proxy_leftovers'
LEFTOVERS_ARGS = {'keep_forward': 'auto'}
# What a test compares before and after: the IPVS table, kube-ipvs0's addresses, iptables
# without its comments (they carry the time), the ipsets, the nftables tables.
SNAPSHOT = ('ipvsadm -S -n; echo "== addresses"; ip -4 -o addr show dev kube-ipvs0; echo "== iptables";'
            ' iptables-save | grep -v "^#"; echo "== ipsets"; ipset list -n; echo "== nft"; nft list tables; true')
PARTS = ('ipvs', 'addresses', 'iptables', 'ipsets', 'nft')


def parse(snapshot):
    """A SNAPSHOT's output -> dict of its PARTS, each the text (no trailing newline)."""
    texts, rest = [], snapshot.rstrip('\n') + '\n'
    for part in PARTS[1:]:
        text, rest = rest.split('== %s\n' % part, 1)
        texts.append(text.rstrip('\n'))
    return dict(zip(PARTS, texts + [rest.rstrip('\n')]))


def snapshot(node):
    return parse(node.run(SNAPSHOT).stdout)


def _env(results_file):
    return dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default',
                ANSIBLE_CALLBACK_RESULT_FORMAT='json', ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, 'callback_plugins'),
                ANSIBLE_CALLBACKS_ENABLED='netlb_results', NETLB_RESULTS_FILE=results_file)


def playbook(lab_node, paths, variables, expect_rc=0):
    """Run playbooks (one ansible-playbook) on the node with the variables (-e @file); its
    output, and the result of each task by the task's name (tests/vm/callback_plugins)."""
    vars_file = os.path.join(lab_node.run_dir, 'handover-vars.json')
    results_file = os.path.join(lab_node.run_dir, 'handover-results.json')
    with open(vars_file, 'w') as handle:
        json.dump(variables, handle)
    proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', lab_node.inventory, '--limit', lab_node.name, '-e', '@' + vars_file]
                          + list(paths), cwd=REPO, env=_env(results_file),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False,
                          timeout=1800)
    assert proc.returncode == expect_rc, proc.stdout[-4000:] + proc.stderr[-2000:]
    with open(results_file) as handle:
        return proc.stdout, {result['task']: result for result in json.load(handle)}


def play(lab_node, name, tasks, variables=None):
    """Tasks in one play (become, no facts) on the node, in one ansible-playbook: the result
    of each of them by its name; every one must have run."""
    path = os.path.join(lab_node.run_dir, 'handover-%s.yml' % name)
    with open(path, 'w') as handle:
        json.dump([{'name': name, 'hosts': lab_node.name, 'become': True, 'gather_facts': False,
                    'vars': variables or {}, 'tasks': tasks}], handle)
    out, results = playbook(lab_node, [path], {})
    missing = [task['name'] for task in tasks if task['name'] not in results]
    assert not missing, 'the play stopped before %s:\n%s' % (missing, out[-6000:])
    return results


def task(name, module, args, **keywords):
    return dict({'name': name, module: args}, **keywords)


def snapshot_task(name):
    return {'name': name, 'ansible.builtin.shell': SNAPSHOT, 'changed_when': False}


def role_task(name, **role_vars):
    return {'name': name, 'ansible.builtin.include_role': {'name': 'kube_proxy'}, 'vars': role_vars}


def restore_text(services):
    """`ipvsadm -R` input for the table, as kube-proxy's IPVS mode makes it (masq, weight 1)."""
    lines = []
    for service in services:
        flag = {'tcp': '-t', 'udp': '-u', 'sctp': '--sctp-service'}[service['protocol']]
        where = '%s:%d' % (service['address'], service['port'])
        line = ['-A', flag, where, '-s', service['scheduler']]
        if service['persistence_timeout']:
            line += ['-p', str(service['persistence_timeout'])]
        lines.append(' '.join(line))
        for server in service['real_servers']:
            assert server['forwarding'] == 'masq'
            lines.append(' '.join(['-a', flag, where, '-r', '%s:%d' % (server['address'], server['port']),
                                   '-m', '-w', str(server['weight'])]))
    return '\n'.join(lines) + '\n'


@pytest.fixture(scope='module')
def node(lab_node):
    # What the ipvs_node role installs (site.yml: test_reconcile.py runs it first in a
    # session), when it is not there yet, and iptables for kube-proxy's leftovers.
    lab_node.run('(for tool in nft conntrack ipvsadm ipset iptables-restore; do command -v $tool >/dev/null || exit 1;'
                 ' done; python3 -c "import yaml") || (apt-get -q update && DEBIAN_FRONTEND=noninteractive '
                 'apt-get -qy install nftables conntrack ipvsadm ipset iptables python3-yaml)', timeout=900)
    lab_node.run(TEARDOWN)
    with open(os.path.join(REPO, 'demo', 'cluster.yaml')) as handle:
        lab_node.run('mkdir -p %s && cat > %s' % (REMOTE, CLUSTER), input=handle.read())
    lab_node.run('cat > {0} && chmod 0755 {0}'.format(BINARY), input=STAND_IN)
    lab_node.run('modprobe ip_vs')
    try:
        yield lab_node
    finally:
        lab_node.run(TEARDOWN, check=False)


@pytest.fixture(scope='module')
def kube_proxy(node):
    """Once for the module: the services k8s_service_proxy computes for node1 (what kube-proxy
    would have made), the addresses of them kube-proxy binds (every virtual address that is
    not one of the node's own, i.e. not a NodePort), and the role's unit and config written
    (kube_proxy_start=false: each test starts kube-proxy from them)."""
    results = play(node, 'kube-proxy', [task('desired', PROXY, dict(PROXY_ARGS, apply=False)),
                                        role_task('the kube_proxy role', kube_proxy_state='present',
                                                  kube_proxy_start=False)], ROLE_VARS)
    services = results['desired']['services']
    own = set(json.loads(node.run("ip -j addr show | python3 -c 'import json,sys; print(json.dumps("
                                  "[a[\"local\"] for i in json.load(sys.stdin) for a in i[\"addr_info\"]]))'")
                         .stdout))
    bound = sorted({service['address'] for service in services} - own)
    assert '10.96.0.20' in bound and len(services) > len(bound)  # NodePorts are on own addresses
    return {'services': services, 'bound': bound}


def kube_proxy_node(node, kube_proxy):
    """Lay the node out as kube-proxy (IPVS mode) leaves it: its table, the Service addresses,
    its iptables rules, ipsets and nftables table, the stand-in kube-proxy running from the
    role's unit (one ssh: each costs seconds on a loaded TCG node). The snapshot of it."""
    script = RESET + '''set -e
ipvsadm -R <<'EOF'
{table}EOF
ip link add kube-ipvs0 type dummy
{addresses}
{ipsets}
iptables-restore --noflush <<'EOF'
{rules}EOF
nft add table ip kube-proxy; nft add chain ip kube-proxy services
systemctl daemon-reload; systemctl enable --now kube-proxy
systemctl is-active kube-proxy
'''.format(table=restore_text(kube_proxy['services']), rules=KUBE_PROXY_RULES,
           addresses='\n'.join('ip addr add %s/32 dev kube-ipvs0' % address for address in kube_proxy['bound']),
           ipsets='\n'.join('ipset create %s' % spec for spec in KUBE_PROXY_SETS))
    out = node.run('bash -s', input=script + SNAPSHOT + '\n').stdout
    active, snapshot_text = out.split('\n', 1)
    assert active == 'active', out
    before = parse(snapshot_text)
    assert len(before['ipvs'].splitlines()) == len(restore_text(kube_proxy['services']).splitlines())  # all, no more
    assert 'table ip kube-proxy' in before['nft']
    return before


KUBE_PROXY_RULES = """*mangle
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-LOAD-BALANCER - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODE-PORT -p tcp -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ
-A KUBE-POSTROUTING -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SERVICES ! -s 10.244.0.0/16 -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
COMMIT
*filter
:FORWARD DROP [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:OPS-ALLOW - [0:0]
-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER
-A INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT
-A INPUT -j OPS-ALLOW
-A FORWARD -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT --reject-with icmp-port-unreachable
-A OPS-ALLOW -m set --match-set ops-admins src -j ACCEPT
COMMIT
"""
KUBE_PROXY_SETS = ('KUBE-CLUSTER-IP hash:ip,port', 'KUBE-LOOP-BACK hash:ip,port,ip', 'KUBE-NODE-PORT-TCP bitmap:port range 0-65535',
                   'KUBE-IPVS-IPS hash:ip', 'KUBE-6-CLUSTER-IP hash:ip,port family inet6', 'ops-admins hash:ip')


def user_chains(iptables):
    return sorted(line.split()[0][1:] for line in iptables.splitlines()
                  if line.startswith(':') and line.split()[1] == '-')


def test_handover_from_kube_proxy_changes_no_ipvs_rule(node, kube_proxy):
    """Also the leftovers module's guards on the way: refused while kube-proxy runs and until
    k8s_service_proxy has converged, and its --check --diff touching nothing."""
    before = kube_proxy_node(node, kube_proxy)
    results = play(node, 'hand-over', [
        task('refused', PROXY, PROXY_ARGS, ignore_errors=True),
        task('leftovers refused', LEFTOVERS, LEFTOVERS_ARGS, ignore_errors=True),
        role_task('kube_proxy_state absent', kube_proxy_state='absent'),
        {'name': 'kube-proxy after the role', 'ansible.builtin.shell': 'systemctl is-active kube-proxy;'
         ' systemctl is-enabled kube-proxy; true', 'changed_when': False},
        task('leftovers refused before the proxy converged', LEFTOVERS, LEFTOVERS_ARGS, ignore_errors=True),
        task('adopted', PROXY, dict(PROXY_ARGS, return_actions=True)), snapshot_task('after adopted'),
        task('again', PROXY, PROXY_ARGS), snapshot_task('after again'),
        task('leftovers checked', LEFTOVERS, LEFTOVERS_ARGS, check_mode=True, diff=True),
        snapshot_task('after leftovers checked'),
    ], ROLE_VARS)
    refused = results['refused']
    assert refused['failed'] and 'kube-proxy runs on this node in IPVS mode' in refused['msg'], refused
    refused = results['leftovers refused']
    assert refused['failed'] and 'kube-proxy is running on this node' in refused['msg'], refused
    assert results['kube-proxy after the role']['stdout'].split() == ['inactive', 'disabled']
    refused = results['leftovers refused before the proxy converged']
    assert refused['failed'] and 'has not converged on this node: no state file' in refused['msg'], refused

    adopted, after = results['adopted'], parse(results['after adopted']['stdout'])
    assert adopted['summary']['actions'] == {}, adopted['summary']
    assert adopted['addresses'] == {'added': [], 'removed': []}
    assert after['ipvs'] == before['ipvs'] and after['addresses'] == before['addresses']
    again, after = results['again'], parse(results['after again']['stdout'])
    assert again['summary']['actions'] == {} and after['ipvs'] == before['ipvs']

    checked, after_check = results['leftovers checked'], parse(results['after leftovers checked']['stdout'])
    assert checked['changed'] and after_check['iptables'] == after['iptables'] == before['iptables']
    assert after_check['ipsets'].split() == [spec.split()[0] for spec in KUBE_PROXY_SETS]
    assert checked['removed']['ipsets'] == ['KUBE-CLUSTER-IP', 'KUBE-LOOP-BACK', 'KUBE-NODE-PORT-TCP', 'KUBE-IPVS-IPS',
                                            'KUBE-6-CLUSTER-IP'], checked
    assert checked['removed']['nft_tables'] == ['ip kube-proxy'], checked
    assert [line.split(': ')[1] for line in checked['kept']] == ['chain KUBE-FORWARD'], checked  # FORWARD DROP
    assert after_check['nft'] == after['nft'] and 'table ip kube-proxy' in after_check['nft']


MIGRATE_VARS = dict(ROLE_VARS, k8s_service_proxy_source='manifests', k8s_service_proxy_path=CLUSTER,
                    k8s_service_proxy_node_name='node1', k8s_service_proxy_service_cidrs=['10.96.0.0/12'],
                    k8s_service_proxy_cluster_cidrs=['10.244.0.0/16'], k8s_service_proxy_families=['ipv4'],
                    k8s_service_proxy_external_ips_allowed_cidrs=['192.0.2.50/32'],
                    migrate_remove_leftovers=True)
MIGRATE = os.path.join(REPO, 'playbooks', 'migrate-from-kube-proxy.yml')
CHECKED = 'The table did not change across the hand-over'  # the playbook's check, a task
REMOVED = "kube_proxy : Remove kube-proxy's leftovers once k8s_service_proxy has converged"  # the role's task


def test_the_migration_playbook_hands_over_then_removes_the_leftovers_and_nothing_else(node, kube_proxy):
    """migrate_remove_leftovers=true: the leftovers go after the table check, in the same run;
    then the module once more (a play after the playbook, same run) has nothing left to do."""
    before = kube_proxy_node(node, kube_proxy)
    again = os.path.join(node.run_dir, 'handover-leftovers-again.yml')
    with open(again, 'w') as handle:
        json.dump([{'name': 'leftovers again', 'hosts': node.name, 'become': True, 'gather_facts': False,
                    'tasks': [task('leftovers again', LEFTOVERS, LEFTOVERS_ARGS)]}], handle)
    out, results = playbook(node, [MIGRATE, again], dict(MIGRATE_VARS, migrate_hosts=node.name))
    order = list(results)  # the tasks in the order they ran
    assert CHECKED in order and REMOVED in order and order.index(CHECKED) < order.index(REMOVED), out[-3000:]
    assert results[REMOVED]['changed'] and 'failed=0' in out, out[-3000:]
    assert node.run('systemctl is-active kube-proxy', check=False).stdout.strip() == 'inactive'
    after = snapshot(node)
    assert after['ipvs'] == before['ipvs'] and after['addresses'] == before['addresses']
    assert user_chains(after['iptables']) == ['KUBE-FORWARD', 'KUBE-KUBELET-CANARY', 'KUBE-KUBELET-CANARY', 'OPS-ALLOW']
    rules = after['iptables']
    assert '-A INPUT -j OPS-ALLOW' in rules and '-j KUBE-FORWARD' in rules and '-j KUBE-SERVICES' not in rules
    assert after['ipsets'].split() == ['ops-admins']
    assert 'kube-proxy' not in after['nft'] and 'table inet netlb_ipvs' in after['nft']
    again = results['leftovers again']
    assert not again['changed'] and again['removed'] == {'iptables': [], 'ipsets': [], 'nft_tables': []}, again


def test_the_migration_playbook_stops_where_the_table_changes(node, kube_proxy):
    """A virtual service in the Service CIDR that no Service of the cluster has: the reconciler
    removes it, so the table changes and the playbook must stop there, before the leftovers
    (migrate_remove_leftovers=true) go."""
    kube_proxy_node(node, kube_proxy)
    node.run('ipvsadm -A -t 10.96.255.254:81 -s rr && ipvsadm -a -t 10.96.255.254:81 -r 10.244.9.9:81 -m')
    before = snapshot(node)
    out, results = playbook(node, [MIGRATE], dict(MIGRATE_VARS, migrate_hosts=node.name), expect_rc=2)
    assert results[CHECKED]['failed'] and 'changed across the hand-over' in results[CHECKED]['msg'], out[-3000:]
    assert REMOVED not in results, out[-3000:]
    after = snapshot(node)
    assert '10.96.255.254' in before['ipvs'] and '10.96.255.254' not in after['ipvs']
    assert after['iptables'] == before['iptables'] and after['ipsets'] == before['ipsets']
    assert 'table ip kube-proxy' in after['nft']
