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
extra virtual service in the Service CIDR makes the table change.
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
              'cluster_cidrs': ['10.244.0.0/16'], 'families': ['ipv4']}

# Back to a node without kube-proxy's table (the files the fixture put there stay).
RESET = '''
systemctl disable --now kube-proxy 2>/dev/null
rm -f /etc/systemd/system/kube-proxy.service; systemctl daemon-reload
rm -rf /var/lib/kube-proxy /var/lib/netlb-ipvs
ipvsadm -C 2>/dev/null; ip link del kube-ipvs0 2>/dev/null
nft delete table inet netlb_ipvs 2>/dev/null
true
'''
TEARDOWN = RESET + '''
rm -rf {binary} {remote}
true
'''.format(binary=BINARY, remote=REMOTE)


def _env():
    return dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_CALLBACK_RESULT_FORMAT='json')


def module(lab_node, name, args, check=True):
    """The result of one module run on the node (ad hoc: 'node1 | SUCCESS => {json}')."""
    proc = subprocess.run([ANSIBLE, '-i', lab_node.inventory, lab_node.name, '-b', '-m', name, '-a', json.dumps(args)],
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
                    k8s_service_proxy_cluster_cidrs=['10.244.0.0/16'], k8s_service_proxy_families=['ipv4'])
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
