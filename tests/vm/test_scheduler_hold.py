# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A scheduler change on a live service refuses no new connection (engine + hold.NftHold).

hold_driver.py runs on a lab node in a director namespace (its own IPVS table and
nftables, so a reused lab keeps its own): a client namespace opens 15 new TCP
connections a second for 20 s, alternately to an IPVS VIP over IPv4 and IPv6, while
the engine flips both services' scheduler rr <-> wrr 10 times. The kernel refuses a new
connection that arrives while it swaps a scheduler; its own window (one RCU grace
period) is too short for 15 connections a second to meet reliably, so the driver
widens each swap to 0.3 s of no scheduler (hold_driver.SWAP_WINDOW). Without the hold
some connections must then be refused; with it none is: they are dropped for that
moment and the client's SYN retry gets through. The same
with SCTP associations: an INIT is dropped and retried the same way (first after
net.sctp.rto_initial, 3 s by default, where TCP retries a SYN after 1 s). A hold that
does nothing fails the "with the hold" tests.
"""

import json

import pytest

pytestmark = pytest.mark.vm

REMOTE = '/var/tmp/netlb-hold'
DIRECTOR = 'hl-dir'
OTHERS = ('hl-cli', 'hl-rs')
FLIPS, SECONDS, RATE = 10, 20, 15
SCTP_FLIPS, SCTP_SECONDS = 10, 20


def driver(node, *args):
    return node.driver('hold_driver.py', REMOTE, args, netns=DIRECTOR)


@pytest.fixture(scope='module')
def node(lab_node):
    """The lab node with nft, ipvsadm, the schedulers, the collection and the namespaces."""
    # hold_driver.py imports backends_driver.py's LocalModule Runner.
    with lab_node.workspace(REMOTE, tools=(('nft', 'nftables'), ('ipvsadm', 'ipvsadm')),
                            modules=('ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'sctp'), files=('backends_driver.py',),
                            namespaces=(DIRECTOR,) + OTHERS):
        driver(lab_node, 'setup')
        try:
            yield lab_node
        finally:
            lab_node.run('test -f {0}/rs.pid && kill $(cat {0}/rs.pid)'.format(REMOTE), check=False)


def test_every_kind_of_service_is_held_by_the_nodes_nft(node):
    result = driver(node, 'every-kind')
    listing = result['listing']
    for element in ('10.77.0.10 . 80', 'fd77::10 . 443', '10.77.0.10 . 3868', 'fd77::10 . 3868'):
        assert element in listing, listing
    assert '53' not in listing  # UDP is not held
    assert 'timeout 10s' in listing and 'hook output priority' in listing
    assert listing.count(' drop') == 2 * 8  # tcp4 tcp6 sctp4 sctp6, 2 per mark family; input and output
    assert result['gone']


def test_scheduler_flips_refuse_nothing_with_the_hold(node):
    held = driver(node, 'run', 'held', FLIPS, SECONDS, RATE)
    client = held['client']
    assert client['sent'] == SECONDS * RATE
    assert client['outcomes'] == {'ok': client['sent']}, held  # zero refused, zero lost
    assert len(held['warnings']) == FLIPS
    assert all('scheduler changed on 2 live service(s)' in w and 'were held' in w for w in held['warnings'])
    assert not held['hold_table_left']
    assert '-A -t 10.77.0.10:80 -s rr' in held['saved'] and '-A -t [fd77::10]:80 -s rr' in held['saved']
    print('\nwith the hold: %s' % json.dumps({k: v for k, v in held.items() if k not in ('warnings', 'saved')}))


def test_without_the_hold_flips_refuse_connections(node):
    """The same flips without the hold: the connections that arrive in a swap are refused
    at once (what the hold prevents), the others get through, none is lost."""
    unheld = driver(node, 'run', 'unheld', FLIPS, SECONDS, RATE)
    client = unheld['client']
    assert set(client['outcomes']) == {'ok', 'refused'}, unheld
    assert sum(client['outcomes'].values()) == client['sent'] == SECONDS * RATE
    assert all('not held: no hold configured' in w for w in unheld['warnings'])
    print('\nwithout the hold: %s' % json.dumps({k: v for k, v in unheld.items() if k not in ('warnings', 'saved')}))


def test_sctp_scheduler_flips_refuse_nothing_with_the_hold(node):
    held = driver(node, 'run', 'held', SCTP_FLIPS, SCTP_SECONDS, RATE, 'sctp')
    client = held['client']
    assert client['sent'] == SCTP_SECONDS * RATE
    assert client['outcomes'] == {'ok': client['sent']}, held
    assert len(held['warnings']) == SCTP_FLIPS and all('were held' in w for w in held['warnings'])
    assert not held['hold_table_left']
    assert '-A --sctp-service 10.77.0.10:80 -s rr' in held['saved'], held['saved']
    print('\nSCTP with the hold: %s' % json.dumps({k: v for k, v in held.items() if k not in ('warnings', 'saved')}))


def test_sctp_without_the_hold_flips_abort_associations(node):
    """Without the hold an SCTP INIT that arrives while the kernel swaps schedulers is
    refused (the director answers port unreachable)."""
    unheld = driver(node, 'run', 'unheld', SCTP_FLIPS, SCTP_SECONDS, RATE, 'sctp')
    client = unheld['client']
    assert set(client['outcomes']) == {'ok', 'refused'}, unheld
    assert sum(client['outcomes'].values()) == client['sent'] == SCTP_SECONDS * RATE
    print('\nSCTP without the hold: %s' % json.dumps({k: v for k, v in unheld.items()
                                                       if k not in ('warnings', 'saved')}))
