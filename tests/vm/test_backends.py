# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Both IPVS backends against a real kernel: the same actions leave the same table.

The collection and backends_driver.py are shipped to a lab node; the driver runs in a
network namespace of its own (IPVS tables are per namespace, so a reused, converged
lab keeps its table) and reports, after every step, `ipvsadm -S -n`, `ipvsadm -L -n
--thresholds` and what the backend itself reads. Each scenario runs once per backend
from an empty table; the records must be identical.
"""

import pytest

pytestmark = pytest.mark.vm

REMOTE = '/var/tmp/netlb-backends'
NETNS = 'netlb-backends'
NETNS_LO_DOWN = 'netlb-backends-lo'


@pytest.fixture(scope='module')
def node(lab_node):
    """The lab node with ipvsadm, ip_vs, the collection, and two fresh namespaces."""
    with lab_node.workspace(REMOTE, tools=(('ipvsadm', 'ipvsadm'),), modules=('ip_vs',),
                            namespaces=(NETNS, NETNS_LO_DOWN)):
        lab_node.run(['ip', '-n', NETNS, 'link', 'set', 'lo', 'up'])
        yield lab_node


def driver(node, *args, netns=NETNS, user=None):
    prefix = ['setpriv', '--reuid=%s' % user, '--regid=%s' % user, '--clear-groups'] if user else []
    return node.driver('backends_driver.py', REMOTE, args, netns=netns, prefix=prefix, timeout=1800)


@pytest.mark.parametrize('scenario, steps', [
    pytest.param('create-every-kind', 1, id='create'),
    pytest.param('edit-every-setting', 2, id='edit'),
    pytest.param('delete-then-flush', 4, id='delete'),
])
def test_same_table_from_both_backends(node, scenario, steps):
    result = driver(node, scenario)
    netlink, ipvsadm = result['netlink'], result['ipvsadm']
    assert len(netlink) == len(ipvsadm) == steps
    for step, (by_netlink, by_ipvsadm) in enumerate(zip(netlink, ipvsadm)):
        assert by_netlink['saved'] == by_ipvsadm['saved'], 'step %d: ipvsadm -S -n differs' % step
        assert by_netlink['thresholds'] == by_ipvsadm['thresholds'], 'step %d: thresholds differ' % step
        for name, record in (('netlink', by_netlink), ('ipvsadm', by_ipvsadm)):
            assert record['read'] == record['expected'], 'step %d: %s read is not the target' % (step, name)
            assert record['left'] == 0, 'step %d: %s would change something again' % (step, name)
    if scenario == 'delete-then-flush':
        assert netlink[-1]['saved'] == ''
    # The settings an edit used to drop, as ipvsadm itself reads them back.
    if scenario in ('create-every-kind', 'edit-every-setting'):
        lines = netlink[-1]['saved'].splitlines()
        assert '-A -u 10.0.0.8:5060 -s %s -p 60 --pe sip -o' % ('rr' if steps == 1 else 'wrr') in lines
        assert '-A -u 10.0.0.6:53 -s nq -o' in lines
        assert ('-a -u 10.0.0.8:5060 -r 10.244.8.1:5060 -i -w %d --tun-type gue --tun-port 6080 --tun-csum'
                % (1 if steps == 1 else 5)) in lines
        assert '-a -u 10.0.0.8:5060 -r 10.244.8.2:5060 -i -w 2 --tun-type gre --tun-csum' in lines
    if scenario == 'delete-then-flush':
        lines = netlink[2]['saved'].splitlines()
        assert '-A -u 10.0.0.8:5060 -s wrr -p 60' in lines  # engine and one-packet scheduling dropped
        assert '-a -u 10.0.0.8:5060 -r 10.244.8.2:5060 -i -w 2 --tun-type gre --tun-nocsum' in lines


def test_ipvsadm_restored_table_needs_no_change(node):
    """A table laid down by ipvsadm -R with every setting reads back (both backends) as
    the same table given as parameters: check mode plans nothing."""
    result = driver(node, 'restore-then-plan')
    for name in ('netlink', 'ipvsadm'):
        record = result[name]
        assert record['read'] == record['expected'], name
        assert record['actions'] == [], name
    assert '-A -u 10.0.0.5:5060 -s rr -p 60 --pe sip -o' in result['netlink']['saved'].splitlines()


def test_refused_action_reported_alike(node):
    result = driver(node, 'refused-action')
    (by_netlink,), (by_ipvsadm,) = result['netlink'], result['ipvsadm']
    assert by_netlink['saved'] == by_ipvsadm['saved']
    for record in (by_netlink, by_ipvsadm):
        # Action 1 adds a server to a service that does not exist; 0, 2 and 3 are fine
        # and the kernel applies them although they share a batch / script with it.
        assert (record['error']['applied'], record['error']['failed']) == ([0, 2, 3], 1)
    assert 'add_server tcp 10.9.9.9:80 -> 10.244.9.9:80: No such process' in by_netlink['error']['message']
    assert 'Service not defined' in by_ipvsadm['error']['message']


def test_refused_real_server_when_loopback_is_down(node):
    result = driver(node, 'refusals', netns=NETNS_LO_DOWN)
    for name in ('netlink', 'ipvsadm'):
        assert (result[name]['apply']['applied'], result[name]['apply']['failed']) == ([0], 1), name
    assert 'address must be unicast, and loopback must be up' in result['netlink']['apply']['message']
    assert 'address not unicast' in result['ipvsadm']['apply']['message']


def test_read_without_cap_net_admin(node):
    result = driver(node, 'refusals', user='65534')
    assert 'needs CAP_NET_ADMIN' in result['netlink']['read']
    assert 'Permission denied' in result['ipvsadm']['read']


def test_bulk_load_reads_back_identically(node):
    timings = driver(node, 'bench', '200', '10')
    for name in ('netlink', 'ipvsadm'):
        assert timings[name]['actions'] == 2200  # the driver asserts the read-back equals


def test_traffic_counters_match_ipvsadm_stats(node):
    """read_traffic(): the kernel's per-service counters, as ipvsadm --stats shows them."""
    result = driver(node, 'traffic')
    assert result['read']['udp 10.0.0.9:53'] == [1, 3, 0, 3 * 128, 0]  # 100 bytes + IP and UDP headers
    assert result['read']['tcp 10.0.0.9:80'] == [0, 0, 0, 0, 0]
    rows = dict((line.split()[1], [int(n) for n in line.split()[2:7]])
                for line in result['stats'].splitlines() if line.startswith(('TCP', 'UDP')))
    assert rows == {'10.0.0.9:53': [1, 3, 0, 384, 0], '10.0.0.9:80': [0, 0, 0, 0, 0]}
