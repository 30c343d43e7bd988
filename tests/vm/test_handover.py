# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The hand-over from kube-proxy to k8s_service_proxy on a real kernel (the session's lab node).

The node is made to look as kube-proxy (IPVS mode) leaves a node of demo/cluster.yaml:
the table k8s_service_proxy computes for it (apply=false) laid down by hand with
`ipvsadm -R`, and the Service addresses on a dummy kube-ipvs0 with `ip addr add` - not
through the module - and a stand-in kube-proxy running from the kube_proxy role's systemd
unit. Then the role's kube_proxy_state=absent stops it and k8s_service_proxy adopts the
node: no IPVS action, and `ipvsadm -S -n` byte-identical before and after. Then the same
through playbooks/migrate-from-kube-proxy.yml itself, and that playbook stopping where an
extra virtual service in the Service CIDR makes the table change. Last, kube-proxy's
iptables chains, ipsets and nftables table laid down next to an operator's chain and set,
and removed by k8s_kube_proxy_leftovers (refused while kube-proxy runs and before
k8s_service_proxy converged; through the playbook with migrate_remove_leftovers=true).
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

# Back to a node without kube-proxy's table (the files the fixture put there stay).
RESET = '''
systemctl disable --now kube-proxy 2>/dev/null
rm -f /etc/systemd/system/kube-proxy.service; systemctl daemon-reload
rm -rf /var/lib/kube-proxy /var/lib/netlb-ipvs
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
rm -rf {binary} {remote}
true
'''.format(binary=BINARY, remote=REMOTE)


def _env():
    return dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_CALLBACK_RESULT_FORMAT='json')


def module(lab_node, name, args, check=True, flags=()):
    """The result of one module run on the node (ad hoc: 'node1 | SUCCESS => {json}')."""
    proc = subprocess.run([ANSIBLE, '-i', lab_node.inventory, lab_node.name, '-b', '-m', name, '-a', json.dumps(args)]
                          + list(flags),
                          cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False, timeout=900)
    try:
        head, _arrow, body = proc.stdout.partition(' => ')
        result = json.loads(body)
        result['failed'] = 'FAILED' in head  # the default callback says it in the head, not the JSON
    except ValueError:
        raise AssertionError('ansible %s: rc=%d\n%s\n%s' % (name, proc.returncode, proc.stdout, proc.stderr))
    if check:
        assert not result.get('failed'), result
    return result


def playbook(lab_node, path, variables, expect_rc=0):
    """Run a playbook on the node with the variables (-e @file); its output."""
    vars_file = os.path.join(lab_node.run_dir, 'handover-vars.json')
    with open(vars_file, 'w') as handle:
        json.dump(variables, handle)
    proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', lab_node.inventory, '--limit', lab_node.name, '-e', '@' + vars_file,
                           path], cwd=REPO, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False,
                          timeout=900)
    assert proc.returncode == expect_rc, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def role(lab_node, **extra):
    playbook(lab_node, os.path.join(HERE, 'handover_kube_proxy.yml'), dict(ROLE_VARS, **extra))


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
    # What the ipvs_node role installs (site.yml), when another test has not yet.
    lab_node.run('(for tool in nft conntrack ipvsadm; do command -v $tool >/dev/null || exit 1; done; '
                 'python3 -c "import yaml") || (apt-get -q update && DEBIAN_FRONTEND=noninteractive '
                 'apt-get -qy install nftables conntrack ipvsadm python3-yaml)', timeout=900)
    lab_node.run(TEARDOWN)
    with open(os.path.join(REPO, 'demo', 'cluster.yaml')) as handle:
        lab_node.run('mkdir -p %s && cat > %s' % (REMOTE, CLUSTER), input=handle.read())
    lab_node.run('cat > {0} && chmod 0755 {0}'.format(BINARY), input=STAND_IN)
    lab_node.run('modprobe ip_vs')
    try:
        yield lab_node
    finally:
        lab_node.run(TEARDOWN, check=False)


def kube_proxy_node(node):
    """Lay the node out as kube-proxy (IPVS mode) leaves it, the stand-in kube-proxy running
    from the role's unit; the services k8s_service_proxy computes and the bound addresses."""
    node.run(RESET)
    # What kube-proxy would have made for node1: the table, and the Service addresses
    # (every virtual address that is not one of the node's own, i.e. not a NodePort).
    desired = module(node, 'netlb.ipvs.k8s_service_proxy', dict(PROXY_ARGS, apply=False))
    own = set(json.loads(node.run("ip -j addr show | python3 -c 'import json,sys; print(json.dumps("
                                  "[a[\"local\"] for i in json.load(sys.stdin) for a in i[\"addr_info\"]]))'")
                         .stdout))
    bound = sorted({service['address'] for service in desired['services']} - own)
    assert '10.96.0.20' in bound and len(desired['services']) > len(bound)  # NodePorts are on own addresses
    node.run('ipvsadm -C && ipvsadm -R', input=restore_text(desired['services']))
    node.run('ip link add kube-ipvs0 type dummy && ' + ' && '.join(
        'ip addr add %s/32 dev kube-ipvs0' % address for address in bound))

    role(node, kube_proxy_state='present')
    assert node.run('systemctl is-active kube-proxy').stdout.strip() == 'active'
    return desired


def test_handover_from_kube_proxy_changes_no_ipvs_rule(node):
    desired = kube_proxy_node(node)
    refused = module(node, 'netlb.ipvs.k8s_service_proxy', PROXY_ARGS, check=False)
    assert refused.get('failed') and 'kube-proxy runs on this node in IPVS mode' in refused['msg'], refused
    before = node.run('ipvsadm -S -n').stdout
    assert len(before.splitlines()) == len(restore_text(desired['services']).splitlines())  # all of it, no more
    addresses_before = node.run('ip -4 -o addr show dev kube-ipvs0').stdout

    role(node, kube_proxy_state='absent')
    assert node.run('systemctl is-active kube-proxy', check=False).stdout.strip() == 'inactive'
    assert node.run('systemctl is-enabled kube-proxy', check=False).stdout.strip() == 'disabled'

    adopted = module(node, 'netlb.ipvs.k8s_service_proxy', dict(PROXY_ARGS, return_actions=True))
    assert adopted['summary']['actions'] == {}, adopted['summary']
    assert adopted['addresses'] == {'added': [], 'removed': []}
    assert node.run('ipvsadm -S -n').stdout == before
    assert node.run('ip -4 -o addr show dev kube-ipvs0').stdout == addresses_before
    again = module(node, 'netlb.ipvs.k8s_service_proxy', PROXY_ARGS)
    assert again['summary']['actions'] == {} and node.run('ipvsadm -S -n').stdout == before


MIGRATE_VARS = dict(ROLE_VARS, k8s_service_proxy_source='manifests', k8s_service_proxy_path=CLUSTER,
                    k8s_service_proxy_node_name='node1', k8s_service_proxy_service_cidrs=['10.96.0.0/12'],
                    k8s_service_proxy_cluster_cidrs=['10.244.0.0/16'], k8s_service_proxy_families=['ipv4'],
                    k8s_service_proxy_external_ips_allowed_cidrs=['192.0.2.50/32'])
MIGRATE = os.path.join(REPO, 'playbooks', 'migrate-from-kube-proxy.yml')


def test_the_migration_playbook_hands_the_node_over(node):
    kube_proxy_node(node)
    before = node.run('ipvsadm -S -n').stdout
    addresses_before = node.run('ip -4 -o addr show dev kube-ipvs0').stdout
    out = playbook(node, MIGRATE, dict(MIGRATE_VARS, migrate_hosts=node.name))
    assert 'The table did not change across the hand-over' in out and 'failed=0' in out, out[-3000:]
    assert node.run('systemctl is-active kube-proxy', check=False).stdout.strip() == 'inactive'
    assert node.run('ipvsadm -S -n').stdout == before
    assert node.run('ip -4 -o addr show dev kube-ipvs0').stdout == addresses_before


def test_the_migration_playbook_stops_where_the_table_changes(node):
    # A virtual service in the Service CIDR that no Service of the cluster has: the
    # reconciler removes it, so the table changes and the playbook must stop there.
    kube_proxy_node(node)
    node.run('ipvsadm -A -t 10.96.255.254:81 -s rr && ipvsadm -a -t 10.96.255.254:81 -r 10.244.9.9:81 -m')
    out = playbook(node, MIGRATE, dict(MIGRATE_VARS, migrate_hosts=node.name), expect_rc=2)
    assert 'changed across the hand-over' in out, out[-3000:]
    assert '10.96.255.254' not in node.run('ipvsadm -S -n').stdout


# kube-proxy's IPVS mode as it leaves iptables (iptables-nft), kubelet's canary, and an
# operator's chain that matches an operator's set; FORWARD policy DROP (KUBE-FORWARD stays).
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
LEFTOVERS = 'netlb.ipvs.k8s_kube_proxy_leftovers'
LEFTOVERS_ARGS = {'keep_forward': 'auto'}  # ad hoc takes '{}' for raw params


def lay_down_leftovers(node):
    node.run('(command -v iptables-restore >/dev/null && command -v ipset >/dev/null) || (apt-get -q update && '
             'DEBIAN_FRONTEND=noninteractive apt-get -qy install iptables ipset)', timeout=900)
    node.run(' && '.join('ipset create %s' % spec for spec in KUBE_PROXY_SETS))
    node.run('iptables-restore --noflush', input=KUBE_PROXY_RULES)
    node.run('nft add table ip kube-proxy && nft add chain ip kube-proxy services')


def iptables_rules(node):
    """iptables-save without its comments (they carry the time)."""
    return ''.join(line + '\n' for line in node.run('iptables-save').stdout.splitlines() if not line.startswith('#'))


def user_chains(node):
    return sorted(line.split()[0][1:] for line in iptables_rules(node).splitlines()
                  if line.startswith(':') and line.split()[1] == '-')


def test_kube_proxys_leftovers_go_last_and_nothing_else(node):
    kube_proxy_node(node)
    lay_down_leftovers(node)
    refused = module(node, LEFTOVERS, LEFTOVERS_ARGS, check=False)
    assert refused['failed'] and 'kube-proxy is running on this node' in refused['msg'], refused
    role(node, kube_proxy_state='absent')
    refused = module(node, LEFTOVERS, LEFTOVERS_ARGS, check=False)
    assert refused['failed'] and 'has not converged on this node: no state file' in refused['msg'], refused
    module(node, 'netlb.ipvs.k8s_service_proxy', PROXY_ARGS)
    before = node.run('ipvsadm -S -n').stdout
    addresses_before = node.run('ip -4 -o addr show dev kube-ipvs0').stdout
    rules_before = iptables_rules(node)

    checked = module(node, LEFTOVERS, LEFTOVERS_ARGS, flags=['--check', '--diff'])
    assert checked['changed'] and iptables_rules(node) == rules_before
    assert node.run('ipset list -n').stdout.split() == [spec.split()[0] for spec in KUBE_PROXY_SETS]
    assert checked['removed']['ipsets'] == ['KUBE-CLUSTER-IP', 'KUBE-LOOP-BACK', 'KUBE-NODE-PORT-TCP', 'KUBE-IPVS-IPS',
                                            'KUBE-6-CLUSTER-IP'], checked
    assert checked['removed']['nft_tables'] == ['ip kube-proxy'], checked
    assert [line.split(': ')[1] for line in checked['kept']] == ['chain KUBE-FORWARD'], checked  # FORWARD DROP

    out = playbook(node, MIGRATE, dict(MIGRATE_VARS, migrate_hosts=node.name, migrate_remove_leftovers=True))
    assert 'failed=0' in out and "Remove kube-proxy's iptables chains" in out, out[-3000:]
    assert user_chains(node) == ['KUBE-FORWARD', 'KUBE-KUBELET-CANARY', 'KUBE-KUBELET-CANARY', 'OPS-ALLOW']
    rules = iptables_rules(node)
    assert '-A INPUT -j OPS-ALLOW' in rules and '-j KUBE-FORWARD' in rules and '-j KUBE-SERVICES' not in rules
    assert node.run('ipset list -n').stdout.split() == ['ops-admins']
    tables = node.run('nft list tables').stdout
    assert 'kube-proxy' not in tables and 'table inet netlb_ipvs' in tables
    assert node.run('ipvsadm -S -n').stdout == before
    assert node.run('ip -4 -o addr show dev kube-ipvs0').stdout == addresses_before

    again = module(node, LEFTOVERS, LEFTOVERS_ARGS)
    assert not again['changed'] and again['removed'] == {'iptables': [], 'ipsets': [], 'nft_tables': []}, again
