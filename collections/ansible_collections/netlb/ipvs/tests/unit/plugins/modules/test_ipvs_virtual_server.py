# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The module's edge: arguments in, JSON out, known failures as fail_json (never a traceback)."""

from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import validation, validation_service
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    PROTOCOLS,
    SERVER_SETTINGS,
    SERVICE_FIELD,
    SERVICE_SETTINGS,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.ipvsadm import IpvsadmBackend
from ansible_collections.netlb.ipvs.plugins.modules import ipvs_virtual_server
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.backends.test_ipvsadm import (
    LIST,
    RESTORE,
    SAVE,
    FakeRunner,
)
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import FakeBackend, no_ipvs_error, table
from ansible_collections.netlb.ipvs.tests.unit.module_args import patch_module_args


FOREIGN = '''
-A -t 192.0.2.1:80 -s wlc
-a -t 192.0.2.1:80 -r 10.9.0.1:80 -m -w 1
'''
WEB = {'address': '10.96.0.10', 'port': 80, 'scheduler': 'rr',
       'real_servers': [{'address': '10.244.1.2', 'port': 8080}, {'address': '10.244.2.3', 'port': 8080}]}


@pytest.fixture
def kernel(monkeypatch, tmp_path):
    """A FakeBackend every module call in the test shares, plus the drain state path."""
    backend = FakeBackend(table(FOREIGN))
    calls = []

    def get_backend(name, runner=None, check_mode=False):
        calls.append(name)
        if backend.refuse == 'unreachable':
            raise no_ipvs_error()
        backend.check_mode = check_mode
        return backend

    monkeypatch.setattr(ipvs_virtual_server, 'get_backend', get_backend)
    backend.calls = calls
    backend.state_path = str(tmp_path / 'drain-state.json')
    return backend


def call(kernel, args, capsys, check_mode=False, diff=False):
    args = dict(args, drain_state_path=kernel.state_path, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            ipvs_virtual_server.main()
    return json.loads(capsys.readouterr().out)


def test_single_service_create_then_idempotent(kernel, capsys):
    result = call(kernel, WEB, capsys, diff=True)
    assert result['changed'] is True, result
    assert [(a['op'], a.get('server')) for a in result['actions']] == [
        ('add_service', None), ('add_server', '10.244.1.2:8080'), ('add_server', '10.244.2.3:8080')]
    assert result['diff']['before'] == ''
    assert result['diff']['after'].startswith('-A -t 10.96.0.10:80 -s rr\n')
    assert [s['address'] for s in result['services']] == ['10.96.0.10']
    assert set(result['timings']) >= {'read', 'plan', 'apply', 'total'}

    again = call(kernel, WEB, capsys)
    assert again['changed'] is False and again['actions'] == [] and 'diff' not in again
    assert str(sorted(kernel.table)).count('192.0.2.1') == 1  # the foreign service is still there


def test_check_mode_reports_and_changes_nothing(kernel, capsys):
    before = dict(kernel.table)
    predicted = call(kernel, WEB, capsys, check_mode=True, diff=True)
    assert predicted['changed'] is True
    assert kernel.table == before
    done = call(kernel, WEB, capsys, diff=True)
    assert predicted['actions'] == done['actions']
    assert predicted['diff'] == done['diff']


def test_graceful_drain_then_absent(kernel, capsys):
    call(kernel, WEB, capsys)
    fewer = dict(WEB, real_servers=WEB['real_servers'][:1])
    kernel.table = table(FOREIGN + '''
        -A -t 10.96.0.10:80 -s rr
        -a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1
        -a -t 10.96.0.10:80 -r 10.244.2.3:8080 -m -w 1
        ''', {'tcp 10.96.0.10:80 10.244.2.3:8080': (3, 1)})
    drained = call(kernel, fewer, capsys)
    assert [(a['op'], a['weight'], a['reason']) for a in drained['actions']] == [('edit_server', 0, 'drain')]
    assert [d['server'] for d in drained['draining']] == ['10.244.2.3:8080']
    waiting = call(kernel, fewer, capsys)
    assert waiting['changed'] is False and len(waiting['draining']) == 1

    gone = call(kernel, dict(WEB, state='absent'), capsys)
    assert [a['op'] for a in gone['actions']] == ['delete_service']
    assert gone['services'] == []
    assert sorted(map(str, kernel.table)) == ['tcp 192.0.2.1:80']


def test_table_form_with_scope(kernel, capsys):
    args = {'scope': ['10.96.0.0/12', 'fwmark:100-199'], 'services': [
        dict(WEB, protocol='tcp'),
        {'fwmark': 100, 'scheduler': 'sh', 'scheduler_flags': ['sh-port'],
         'real_servers': [{'address': '10.0.1.2', 'forwarding': 'route'}]},
    ]}
    result = call(kernel, args, capsys)
    assert result['changed'] is True
    assert [s.get('fwmark') for s in result['services']] == [100, None]  # sorted by key: fwmark first
    assert call(kernel, args, capsys)['changed'] is False
    emptied = call(kernel, dict(args, services=[]), capsys)
    assert emptied['failed'] is True and 'allow_empty' in emptied['msg']
    wiped = call(kernel, dict(args, services=[], allow_empty=True), capsys)
    assert [a['op'] for a in wiped['actions']] == ['delete_service', 'delete_service']
    assert sorted(map(str, kernel.table)) == ['tcp 192.0.2.1:80']


@pytest.mark.parametrize('which, first, second', [
    pytest.param('all', ['10.96.0.10', '10.96.0.11'], ['10.96.0.10', '10.96.0.11'], id='all'),
    pytest.param('changed', ['10.96.0.10', '10.96.0.11'], ['10.96.0.11'], id='changed'),
    pytest.param('none', [], [], id='none'),
])
def test_return_services_chooses_what_is_listed(kernel, capsys, which, first, second):
    other = dict(WEB, address='10.96.0.11', real_servers=[{'address': '10.244.1.9', 'port': 80}])
    args = {'scope': ['10.96.0.0/12'], 'return_services': which, 'services': [WEB, other]}
    created = call(kernel, args, capsys)
    assert [s['address'] for s in created['services']] == first
    assert created['summary'] == {'services': 2, 'real_servers': 3, 'actions': {'add_service': 2, 'add_server': 3}}
    # One weight edited: only that service has changed; the counts still cover the table.
    edited = dict(other, real_servers=[{'address': '10.244.1.9', 'port': 80, 'weight': 5}])
    result = call(kernel, dict(args, services=[WEB, edited]), capsys)
    assert [s['address'] for s in result['services']] == second
    assert result['summary'] == {'services': 2, 'real_servers': 3, 'actions': {'edit_server': 1}}
    converged = call(kernel, dict(args, services=[WEB, edited]), capsys)
    assert converged['services'] == ([] if which != 'all' else result['services'])
    assert converged['summary']['actions'] == {}


def test_json_text_and_return_actions_false(kernel, capsys):
    """The table as JSON text converges like the list; return_actions=false leaves the
    action list out, and the summary still counts what was done."""
    other = dict(WEB, address='10.96.0.11', real_servers=[{'address': '10.244.1.9', 'port': 80}])
    args = {'scope': ['10.96.0.0/12'], 'services': json.dumps([WEB, other]), 'return_actions': False,
            'return_services': 'none'}
    created = call(kernel, args, capsys)
    assert created['changed'] is True and 'actions' not in created and created['services'] == []
    assert created['summary'] == {'services': 2, 'real_servers': 3, 'actions': {'add_service': 2, 'add_server': 3}}
    assert sorted(map(str, kernel.table)) == ['tcp 10.96.0.10:80', 'tcp 10.96.0.11:80', 'tcp 192.0.2.1:80']
    as_list = call(kernel, dict(args, services=[WEB, other], return_actions=True), capsys)
    assert as_list['changed'] is False and as_list['actions'] == []


def test_json_text_that_is_not_a_table_changes_nothing(kernel, capsys):
    result = call(kernel, {'scope': ['10.96.0.0/12'], 'services': ''}, capsys)
    assert result['failed'] is True
    assert result['problems'] == ['services: a string must be the JSON text of a list of services: '
                                  'Expecting value: line 1 column 1 (char 0)']
    assert kernel.calls == [] and kernel.reads == 0


@pytest.mark.parametrize('args, msg, problems', [
    pytest.param(dict(WEB, real_servers=[{'address': '10.244.1.2', 'weight': 70000}, {'address': 'fd00::1'}]),
                 'invalid parameters: real_servers[0].weight: 70000 is out of range 0-65535; '
                 'real_servers[1].address: fd00::1 is IPv6 but the service is IPv4 (only tunnel forwarding crosses '
                 'families)',
                 ['real_servers[0].weight: 70000 is out of range 0-65535',
                  'real_servers[1].address: fd00::1 is IPv6 but the service is IPv4 (only tunnel forwarding crosses '
                  'families)'], id='collects-all'),
    pytest.param({'services': [WEB, dict(WEB, address='192.0.2.9')], 'scope': ['10.96.0.0/12']},
                 'invalid parameters: services[1]: tcp 192.0.2.9:80 is outside scope',
                 ['services[1]: tcp 192.0.2.9:80 is outside scope'], id='outside-scope'),
    pytest.param({'fwmark': 5, 'drain_timeout': -1}, 'invalid parameters: drain_timeout: -1 is out of range 0 or more',
                 ['drain_timeout: -1 is out of range 0 or more'], id='negative-drain-timeout'),
])
def test_invalid_input_fails_before_the_kernel(kernel, capsys, args, msg, problems):
    result = call(kernel, args, capsys)
    assert result['failed'] is True
    assert result['msg'] == msg
    assert result['problems'] == problems
    assert 'exception' not in result
    assert kernel.calls == [] and kernel.reads == 0


def test_table_form_entries_are_checked_by_validation(kernel, capsys):
    """services has no nested options in the argument spec (too slow at 50,000 real
    servers): unknown keys and wrong types inside it are validation's to report, each with
    its path and all at once, before the kernel is read."""
    services = [
        dict(WEB, vip='10.0.0.1', real_servers=[{'address': '10.244.1.2', 'wieght': 2},
                                                {'address': '10.244.1.3', 'weight': 'heavy', 'port': [80]},
                                                'address=10.244.1.4']),
        dict(WEB, address='10.96.0.11', port='http', scheduler=['rr'], real_servers='10.244.1.5'),
    ]
    result = call(kernel, {'services': services}, capsys)
    assert result['failed'] is True
    assert result['problems'] == [
        'services[0].vip: unknown option',
        'services[0].real_servers[0].wieght: unknown option',
        "services[0].real_servers[1].weight: 'heavy' (text) is not an integer",
        'services[0].real_servers[1].port: [80] (a list) is not an integer',
        "services[0].real_servers[2]: expected a dictionary, got 'address=10.244.1.4' (text)",
        "services[1].port: 'http' (text) is not an integer",
        "services[1].scheduler: ['rr'] (a list) is not one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, "
        "ovf, twos",
        "services[1].real_servers: expected a list, got '10.244.1.5' (text)",
    ]
    assert kernel.calls == [] and kernel.reads == 0


def test_whole_floats_are_integers_text_is_not(kernel, capsys):
    """Whole floats (as JSON may spell numbers) are integers; a number as text is refused,
    in the table form as in the single form, with its field path."""
    loose = dict(WEB, port=80.0, real_servers=[
        {'address': '10.244.1.2', 'port': 8080.0, 'weight': 1.0}, {'address': '10.244.2.3', 'port': 8080}])
    assert call(kernel, {'services': [loose]}, capsys)['changed'] is True
    again = call(kernel, {'services': [WEB], 'return_services': 'all'}, capsys)
    assert again['changed'] is False
    assert [(rs['port'], rs['weight']) for rs in again['services'][0]['real_servers']] == [(8080, 1), (8080, 1)]
    text = call(kernel, {'services': [dict(WEB, port='80')]}, capsys)
    assert text['problems'] == ["services[0].port: '80' (text) is not an integer"]


# Columns: single-form arguments, the problems (each with its field path). ansible-core's own
# checks would have turned '80' into 80 and True into 1, and named neither the index of a
# real server nor a list given for a service key; the options are raw, validation answers.
SINGLE_FORM_TYPE_CASES = [
    pytest.param(dict(WEB, real_servers='10.244.1.2'),
                 ["real_servers: expected a list, got '10.244.1.2' (text)"], id='text-for-real-servers'),
    pytest.param(dict(WEB, real_servers=[{'address': '10.244.1.2'}, {'address': '10.244.1.3', 'weight': '2'}]),
                 ["real_servers[1].weight: '2' (text) is not an integer"], id='number-as-text-in-a-real-server'),
    pytest.param(dict(WEB, port='80'), ["port: '80' (text) is not an integer"], id='port-as-text'),
    pytest.param(dict(WEB, port=True), ['port: True (a boolean) is not an integer'], id='bool-for-port'),
    pytest.param(dict(WEB, real_servers=[{'address': '10.244.1.2', 'upper_threshold': True}]),
                 ['real_servers[0].upper_threshold: True (a boolean) is not an integer'], id='bool-for-threshold'),
    pytest.param(dict(WEB, scheduler=['rr']),
                 ["scheduler: ['rr'] (a list) is not one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, "
                  "ovf, twos"], id='list-for-scheduler'),
    pytest.param(dict(WEB, address=['10.96.0.10']), ["address: ['10.96.0.10'] (a list) is not an IP address (text)"],
                 id='list-for-address'),
    pytest.param(dict(WEB, real_servers=[['10.244.1.2', 8080]]),
                 ["real_servers[0]: expected a dictionary, got ['10.244.1.2', 8080] (a list)"],
                 id='list-for-a-real-server'),
    pytest.param(dict(WEB, one_packet='yes'), ["one_packet: 'yes' (text) is not a boolean (true or false)"],
                 id='text-for-bool'),
]


@pytest.mark.parametrize('args, problems', SINGLE_FORM_TYPE_CASES)
def test_single_form_wrong_types_name_their_field(kernel, capsys, args, problems):
    result = call(kernel, args, capsys)
    assert result['failed'] is True
    assert result['problems'] == problems
    assert kernel.calls == [] and kernel.reads == 0


# Columns: the services argument, the problems. A string where the list of services is
# expected (that is not JSON of a list), a list where a service is expected.
TABLE_FORM_TYPE_CASES = [
    pytest.param('tcp 10.96.0.10:80', ['services: a string must be the JSON text of a list of services: '
                                       'Expecting value: line 1 column 1 (char 0)'], id='text-for-services'),
    pytest.param([['tcp', '10.96.0.10', 80]], ["services[0]: expected a dictionary, got ['tcp', '10.96.0.10', 80] "
                                               "(a list)"], id='list-for-a-service'),
    pytest.param({'address': '10.96.0.10'}, ["services: expected a list, got {'address': '10.96.0.10'} "
                                             "(a dictionary)"], id='dict-for-services'),
    pytest.param([dict(WEB, real_servers={'address': '10.244.1.2'})],
                 ["services[0].real_servers: expected a list, got {'address': '10.244.1.2'} (a dictionary)"],
                 id='dict-for-real-servers'),
]


@pytest.mark.parametrize('services, problems', TABLE_FORM_TYPE_CASES)
def test_table_form_wrong_types_name_their_field(kernel, capsys, services, problems):
    result = call(kernel, {'services': services}, capsys)
    assert result['failed'] is True
    assert result['problems'] == problems
    assert kernel.calls == [] and kernel.reads == 0


def _documented_default(field):
    return list(field.default) if isinstance(field.default, tuple) else field.default


def test_documentation_is_the_field_table():
    """validate-modules compares documented suboptions with the argument spec's options;
    services has none and the single form is raw, so this holds the docs to the field
    table (model.SERVICE_SETTINGS, SERVER_SETTINGS) and validation instead."""
    options = yaml.safe_load(ipvs_virtual_server.DOCUMENTATION)['options']
    docs = options['services']['suboptions']
    server_docs = docs['real_servers']['suboptions']
    assert tuple(docs) == validation_service.SERVICE_FIELDS
    assert tuple(server_docs) == validation_service.SERVER_FIELDS
    assert docs['protocol']['choices'] == list(PROTOCOLS)
    assert docs['family']['choices'] == list(validation_service.FAMILIES)
    for field, doc in [(field, docs[field.name]) for field in SERVICE_SETTINGS] + [
            (field, server_docs[field.name]) for field in SERVER_SETTINGS]:
        assert doc['description'] == list(field.doc), field.name
        assert doc['type'] == field.kind, field.name
        assert doc.get('choices', []) == list(field.choices), field.name
        assert doc.get('default') == _documented_default(field), field.name
    for name in validation_service.SERVICE_FIELDS:  # the single form: the same keys, checked by validation
        assert options[name]['type'] == 'raw' and ipvs_virtual_server.ARGUMENT_SPEC[name] == {'type': 'raw'}, name
        if name in SERVICE_FIELD:
            assert options[name]['description'] == ['Single form - as O(services[].%s).' % name]
    assert options['real_servers']['suboptions'] == server_docs

    # What validation makes of an entry that gives nothing but its names is the documented defaults.
    (service,) = validation.parse_services([{'address': '10.96.0.10', 'port': 80,
                                             'real_servers': [{'address': '10.244.1.2', 'forwarding': 'tunnel'}]}])
    for field in SERVICE_SETTINGS:
        if field.default is not None:
            assert getattr(service, field.name) == field.default, field.name
    for field in SERVER_SETTINGS:
        expected = 'tunnel' if field.name == 'forwarding' else field.default
        assert getattr(service.real_servers[0], field.name) == expected, field.name


@pytest.mark.parametrize('args, msg', [
    pytest.param({'services': [WEB], 'address': '10.0.0.1', 'port': 80}, 'parameters are mutually exclusive',
                 id='both-forms'),
    pytest.param({'fwmark': 5, 'address': '10.0.0.1', 'port': 80}, 'parameters are mutually exclusive',
                 id='fwmark-and-address'),
    pytest.param({'scheduler': 'rr'}, 'one of the following is required: services, address, fwmark', id='nothing'),
    pytest.param({'address': '10.0.0.1'}, 'parameters are required together: address, port', id='no-port'),
])
def test_argument_spec_rules(kernel, capsys, args, msg):
    result = call(kernel, args, capsys)
    assert result['failed'] is True
    assert result['msg'].startswith(msg), result['msg']


def test_kernel_refusal_names_applied_and_failed(kernel, capsys):
    kernel.refuse = lambda action: 'Invalid argument' if action.server and action.server.address == '10.244.2.3' \
        else None
    result = call(kernel, WEB, capsys)
    assert result['failed'] is True and result['changed'] is True
    # The module names the action the kernel refused; the reason after it is the kernel's (the fake's here).
    assert result['msg'] == 'add_server tcp 10.96.0.10:80 10.244.2.3:8080 w1 new: Invalid argument'
    assert [a['op'] for a in result['applied']] == ['add_service', 'add_server']
    assert result['failed_action'] == {'op': 'add_server', 'service': 'tcp 10.96.0.10:80', 'server': '10.244.2.3:8080',
                                       'weight': 1, 'reason': 'new'}
    kernel.refuse = None
    assert call(kernel, WEB, capsys)['actions'] == [
        {'op': 'add_server', 'service': 'tcp 10.96.0.10:80', 'server': '10.244.2.3:8080', 'weight': 1,
         'reason': 'new'}]


def test_unreachable_kernel_is_a_clear_failure(kernel, capsys):
    kernel.refuse = 'unreachable'
    result = call(kernel, WEB, capsys)
    assert result['failed'] is True
    assert result['msg'] == ('the kernel has no IPVS generic netlink family: the ip_vs module is not loaded '
                             '(modprobe ip_vs) or IPVS is not built in')
    assert 'exception' not in result


def test_empty_table_is_refused_before_the_kernel_is_opened(kernel, capsys):
    """A node without IPVS is told about its input first."""
    kernel.refuse = 'unreachable'
    result = call(kernel, {'scope': ['10.96.0.0/12'], 'services': []}, capsys)
    assert result['failed'] is True and 'allow_empty' in result['msg']
    assert kernel.calls == []


@pytest.mark.parametrize('script, msg, evidence', [
    pytest.param({SAVE: [(2, '', "Can't initialize ipvs: Protocol not available\n")]},
                 "/usr/sbin/ipvsadm -S -n failed (rc=2): Can't initialize ipvs: Protocol not available",
                 {'cmd': '/usr/sbin/ipvsadm -S -n', 'rc': 2, 'stdout': '',
                  'stderr': "Can't initialize ipvs: Protocol not available\n"}, id='read'),
    pytest.param({SAVE: [(0, '', '')], LIST: [(0, '', '')],
                  RESTORE: [(1, '', 'Memory allocation problem\n')]},
                 'ipvsadm -R (rc=1) left 3 of 3 action(s) undone, first -A -t 10.96.0.10:80 -s rr: '
                 'Memory allocation problem',
                 {'cmd': '/usr/sbin/ipvsadm -R', 'rc': 1, 'stdout': '', 'stderr': 'Memory allocation problem\n'},
                 id='restore'),
])
def test_a_failed_ipvsadm_call_carries_its_evidence(monkeypatch, tmp_path, capsys, script, msg, evidence):
    fake = FakeRunner(script)
    monkeypatch.setattr(ipvs_virtual_server, 'get_backend',
                        lambda name, runner=None, check_mode=False: IpvsadmBackend(fake, check_mode))
    args = dict(WEB, drain_state_path=str(tmp_path / 'state.json'))
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            ipvs_virtual_server.main()
    result = json.loads(capsys.readouterr().out)
    assert result['failed'] is True
    assert result['msg'] == msg
    assert dict((name, result[name]) for name in evidence) == evidence


def test_defaults_return_little_and_say_what_they_cut(kernel, capsys):
    many = [dict(WEB, address='10.96.1.%d' % n, real_servers=[{'address': '10.244.1.%d' % n, 'port': 80}])
            for n in range(1, 16)]
    created = call(kernel, {'scope': ['10.96.0.0/12'], 'services': many}, capsys)
    assert len(created['actions']) == 20 and len(created['services']) == 15
    assert created['truncated'] == {'actions': 30}
    assert created['summary']['actions'] == {'add_service': 15, 'add_server': 15}
    assert created['actions'][0] == {'op': 'add_service', 'service': 'tcp 10.96.1.1:80', 'reason': 'new'}
    converged = call(kernel, {'scope': ['10.96.0.0/12'], 'services': many}, capsys)
    assert (converged['services'], converged['actions'], 'truncated' in converged) == ([], [], False)
    listed = call(kernel, {'scope': ['10.96.0.0/12'], 'services': many, 'return_services': 'all',
                           'return_limit': 7}, capsys)
    assert len(listed['services']) == 7 and listed['truncated'] == {'services': 15}
    assert [s['address'] for s in listed['services']][:2] == ['10.96.1.1', '10.96.1.10']  # by key
    everything = call(kernel, {'scope': ['10.96.0.0/12'], 'services': many, 'return_services': 'all',
                               'return_limit': 0}, capsys)
    assert len(everything['services']) == 15 and 'truncated' not in everything


def test_a_negative_return_limit_is_refused_before_the_kernel(kernel, capsys):
    result = call(kernel, dict(WEB, return_limit=-1), capsys)
    assert result['failed'] is True and result['problems'] == ['return_limit: -1 is out of range 0 or more']
    assert kernel.calls == []


@pytest.mark.parametrize('check_mode', [pytest.param(False, id='real'), pytest.param(True, id='check')])
def test_a_scheduler_change_is_held_through_nft(kernel, capsys, monkeypatch, check_mode):
    steps = []

    class Hold(object):
        def __init__(self, runner):
            assert runner.module is not None  # the module's own Runner runs nft

        def check(self):
            steps.append('check')

        def place(self, keys):
            steps.append('place %s' % ', '.join(str(key) for key in keys))

        def release(self):
            steps.append('release')

    monkeypatch.setattr(ipvs_virtual_server, 'NftHold', Hold)
    call(kernel, WEB, capsys)
    assert steps == []
    result = call(kernel, dict(WEB, scheduler='wrr'), capsys, check_mode=check_mode)
    assert steps == (['check'] if check_mode else ['place tcp 10.96.0.10:80', 'release'])
    assert [a['op'] for a in result['actions']] == ['edit_service']
    # ansible-core 2.19 returns warnings as structured events, older ones as strings.
    (warning,) = [w if isinstance(w, str) else w['event']['msg'] for w in result['warnings']]
    assert warning.startswith('scheduler would change' if check_mode else 'scheduler changed')
    assert ('a real run holds new TCP/SCTP connections' if check_mode else 'were held') in warning


def test_scheduler_hold_false_touches_no_nft_and_says_the_change_was_not_held(kernel, capsys, monkeypatch):
    made = []
    monkeypatch.setattr(ipvs_virtual_server, 'NftHold', made.append)
    call(kernel, dict(WEB, scheduler_hold=False), capsys)
    result = call(kernel, dict(WEB, scheduler='wrr', scheduler_hold=False), capsys)
    assert made == [] and [a['op'] for a in result['actions']] == ['edit_service']
    (warning,) = [w if isinstance(w, str) else w['event']['msg'] for w in result['warnings']]
    assert warning.startswith('scheduler changed') and 'not held: no hold configured' in warning
