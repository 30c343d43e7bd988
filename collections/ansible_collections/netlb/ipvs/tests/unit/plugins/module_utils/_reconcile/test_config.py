# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node's reconcile config: a whole document parses into what the modules would
make of the same options, and any bad input is one ValidationError naming every problem
by its field path; the sections accept only options the modules have, with their defaults."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import validation
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import pipeline
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import config
from ansible_collections.netlb.ipvs.plugins.modules import ipvs_virtual_server, k8s_service_proxy
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._reconcile.fakes import STATIC_SERVICES

SCOPE = ['198.51.100.0/24']
KUBERNETES = {'source': 'api', 'kubeconfig': '/etc/netlb-ipvs/kubeconfig', 'node_name': 'node-a',
              'service_cidrs': ['10.96.0.0/12'], 'cluster_cidrs': ['10.244.0.0/16'], 'scheduler': 'wlc',
              'masquerade': 'all', 'max_delete_ratio': 0.25, 'force': False, 'validate_certs': True}
PULL = {'url': 'https://git.example.com/lb.git', 'branch': 'prod', 'directory': '/var/lib/netlb-ipvs/pull',
        'playbook': 'site.yml', 'inventory': 'inventory/prod', 'verify_commit': True}


class File(object):
    """A row's services file: written to tmp_path, its path put where the row says."""

    def __init__(self, text):
        self.text = text if isinstance(text, str) else json.dumps(text)


DELETE = object()


def document(tmp_path):
    """A valid document using every section."""
    services_file = tmp_path / 'services.json'
    services_file.write_text(json.dumps(STATIC_SERVICES))
    return {
        'version': 1,
        'node': {'modules': ['ip_vs', 'ip_vs_wlc', 'nf-conntrack'],
                 'sysctl': {'net.ipv4.ip_forward': True, 'net.ipv4.vs.conntrack': 1,
                            'net.ipv4.ip_local_port_range': '32768\t 60999 '},
                 'ipvs_timeouts': {'tcp': '2h0m0s', 'tcp_fin': '0s', 'udp': 60}},
        'static': {'services_file': str(services_file), 'scope': SCOPE, 'exclusive': True, 'allow_empty': False,
                   'purge_real_servers': False, 'graceful': True, 'drain_timeout': 30, 'scheduler_hold': False,
                   'backend': 'ipvsadm', 'drain_state_path': str(tmp_path / 'drain.json')},
        'kubernetes': dict(KUBERNETES),
        'pull': dict(PULL),
        'metrics_dir': '/var/lib/node_exporter/textfile',
        'timeout': 120,
    }


def edited(tmp_path, base, edits):
    """base with edits applied: 'section.key' or 'key' -> value; DELETE removes the
    key, a File is written and replaced by its path."""
    result = copy.deepcopy(base)
    for index, (path, value) in enumerate(sorted(edits.items())):
        if isinstance(value, File):
            written = tmp_path / ('edited-%d.json' % index)
            written.write_text(value.text)
            value = str(written)
        section, nested, name = path.partition('.')
        target, name = (result[section], name) if nested else (result, path)
        if value is DELETE:
            target.pop(name, None)
        else:
            target[name] = value
    return result


def field_paths(problems, prefix='config: '):
    paths = []
    for problem in problems:
        assert problem.startswith(prefix), problem
        paths.append(problem[len(prefix):].split(': ', 1)[0])
    return sorted(paths)


def test_a_whole_document_parses_into_what_the_modules_would_make(tmp_path):
    given = document(tmp_path)
    parsed = config.parse(given)
    assert parsed.modules == ('ip_vs', 'ip_vs_wlc', 'nf-conntrack')
    # Sorted by key, values as the kernel prints them (booleans and numbers as text, blanks collapsed).
    assert parsed.sysctl == (('net.ipv4.ip_forward', '1'), ('net.ipv4.ip_local_port_range', '32768 60999'),
                             ('net.ipv4.vs.conntrack', '1'))
    assert tuple(parsed.ipvs_timeouts) == (7200, 0, 60)  # kube_proxy_*_timeout's durations, in seconds
    # The static table is ipvs_virtual_server's reading of the same services and options.
    static = given['static']
    assert parsed.static.request == validation.parse_request({
        'services': STATIC_SERVICES, 'scope': SCOPE, 'exclusive': True, 'allow_empty': False, 'drain_timeout': 30})
    assert (parsed.static.purge_real_servers, parsed.static.graceful, parsed.static.drain_timeout,
            parsed.static.scheduler_hold, parsed.static.backend, parsed.static.drain_state_path) == (
        static['purge_real_servers'], static['graceful'], static['drain_timeout'], static['scheduler_hold'],
        static['backend'], static['drain_state_path'])
    # The Kubernetes options as k8s_service_proxy's pipeline takes them, defaults filled in.
    assert parsed.kubernetes == pipeline.with_defaults(KUBERNETES)
    assert parsed.kubernetes['page_size'] == pipeline.DEFAULTS['page_size']
    assert (parsed.pull, parsed.metrics_dir, parsed.timeout) == (PULL, given['metrics_dir'], given['timeout'])


def test_the_sections_are_optional_and_static_takes_the_module_defaults(tmp_path):
    assert config.parse({}) == config.Config()
    services_file = tmp_path / 'services.json'
    services_file.write_text(json.dumps(STATIC_SERVICES))
    parsed = config.parse({'static': {'services_file': str(services_file), 'scope': SCOPE}})
    defaults = dict((name, ipvs_virtual_server.ARGUMENT_SPEC[name]['default']) for name in config.STATIC_DEFAULTS)
    assert parsed.static.request.exclusive is defaults['exclusive']
    assert parsed.static.request.allow_empty is defaults['allow_empty']
    for name in ('purge_real_servers', 'graceful', 'drain_timeout', 'scheduler_hold', 'backend', 'drain_state_path'):
        assert getattr(parsed.static, name) == defaults[name], name


BAD = [
    # id, edits of the valid document, field paths of the problems (one ValidationError)
    ('unknown top-level key', {'colour': 'blue'}, ['colour']),
    ('unknown node key', {'node.modprobe': '/sbin/modprobe'}, ['node.modprobe']),
    ('unknown static key', {'static.services': []}, ['static.services']),
    ('unknown kubernetes key: apply is not a node option', {'kubernetes.apply': False}, ['kubernetes.apply']),
    ('unknown pull key', {'pull.checkout': 'main'}, ['pull.checkout']),
    ('version 2', {'version': 2}, ['version']),
    ('node not an object', {'node': ['ip_vs']}, ['node']),
    ('module name with a space', {'node.modules': ['ip_vs', 'ip vs']}, ['node.modules[1]']),
    ('module name read as a modprobe option', {'node.modules': ['-r', 'ip_vs']}, ['node.modules[0]']),
    ('module name too long for the kernel', {'node.modules': ['m' * 56]}, ['node.modules[0]']),
    ('modules not a list', {'node.modules': 'ip_vs'}, ['node.modules']),
    ('sysctl key with slashes', {'node.sysctl': {'net/ipv4/ip_forward': 1}}, ['node.sysctl.net/ipv4/ip_forward']),
    ('sysctl key without a dot', {'node.sysctl': {'ip_forward': 1}}, ['node.sysctl.ip_forward']),
    ('sysctl value a list', {'node.sysctl': {'net.ipv4.ip_forward': [1]}}, ['node.sysctl.net.ipv4.ip_forward']),
    ('sysctl value null', {'node.sysctl': {'net.ipv4.ip_forward': None}}, ['node.sysctl.net.ipv4.ip_forward']),
    ('ipvs timeout not a duration', {'node.ipvs_timeouts': {'tcp': '15 minutes', 'udp': '-1s'}},
     ['node.ipvs_timeouts.tcp', 'node.ipvs_timeouts.udp']),
    ('ipvs timeout unknown field', {'node.ipvs_timeouts': {'tcpfin': '30s'}}, ['node.ipvs_timeouts.tcpfin']),
    ('services_file not given', {'static.services_file': DELETE}, ['static.services_file']),
    ('services_file relative', {'static.services_file': 'services.json'}, ['static.services_file']),
    ('services_file absent', {'static.services_file': '/nonexistent/netlb-services.json'},
     ['static.services_file']),
    ('a service port out of range in the services file',
     {'static.services_file': File([dict(STATIC_SERVICES[0]), dict(STATIC_SERVICES[1], port=70000)])},
     ['static.services[1].port']),
    ('a real server weight wrong in the services file',
     {'static.services_file': File([dict(STATIC_SERVICES[0], real_servers=[{'address': '10.1.0.1', 'weight': -1}])])},
     ['static.services[0].real_servers[0].weight']),
    ('services file not JSON', {'static.services_file': File('- not: json')}, ['static.services']),
    ('static service outside the scope', {'static.scope': ['203.0.113.0/24']},
     ['static.services[0]', 'static.services[1]']),
    ('static boolean as text', {'static.graceful': 'yes'}, ['static.graceful']),
    ('static allow_empty as text (would allow emptying the table)', {'static.allow_empty': 'no'},
     ['static.allow_empty']),
    ('static exclusive as text', {'static.exclusive': 'no'}, ['static.exclusive']),
    ('static backend unknown', {'static.backend': 'iptables'}, ['static.backend']),
    ('kubernetes scheduler unknown', {'kubernetes.scheduler': 'fastest'}, ['kubernetes.scheduler']),
    ('kubernetes service_cidrs not a CIDR', {'kubernetes.service_cidrs': ['10.96.0.0/12', '10.96.0.0/33']},
     ['kubernetes.service_cidrs[1]']),
    ('kubernetes service_cidrs missing', {'kubernetes.service_cidrs': DELETE}, ['kubernetes.service_cidrs']),
    ('kubernetes request_timeout negative', {'kubernetes.request_timeout': -1}, ['kubernetes.request_timeout']),
    ('kubernetes page_size zero', {'kubernetes.page_size': 0}, ['kubernetes.page_size']),
    ('kubernetes external_ips_allowed_cidrs with a zone id',
     {'kubernetes.external_ips_allowed_cidrs': ['198.51.100.0/24', 'fd00::%eth0/64']},
     ['kubernetes.external_ips_allowed_cidrs[1]']),
    ('kubernetes manifests without path', {'kubernetes.source': 'manifests'}, ['kubernetes.path']),
    ('kubernetes source unknown', {'kubernetes.source': 'etcd'}, ['kubernetes.source']),
    ('kubernetes namespaces not a list', {'kubernetes.namespaces': 'default'}, ['kubernetes.namespaces']),
    ('kubernetes force as text (would lift the delete guard)', {'kubernetes.force': 'no'}, ['kubernetes.force']),
    ('kubernetes scheduler_hold as text', {'kubernetes.scheduler_hold': 'off'}, ['kubernetes.scheduler_hold']),
    ('pull without url', {'pull.url': DELETE}, ['pull.url']),
    ('pull verify_commit as text', {'pull.verify_commit': 'yes'}, ['pull.verify_commit']),
    ('metrics_dir relative', {'metrics_dir': 'textfile'}, ['metrics_dir']),
    ('timeout 0', {'timeout': 0}, ['timeout']),
    ('timeout true', {'timeout': True}, ['timeout']),
    ('timeout as text', {'timeout': '300'}, ['timeout']),
    ('everything at once', {
        'colour': 'blue', 'version': 0, 'node.modprobe': 1, 'node.modules': ['ip vs'],
        'node.sysctl': {'IP_FORWARD': 1, 'net.ipv4.vs.expire_nodest_conn': {}},
        'static.services_file': File([dict(STATIC_SERVICES[0], port=70000)]), 'static.extra': 1,
        'kubernetes.scheduler': 'fastest', 'kubernetes.service_cidrs': ['x'], 'kubernetes.extra': 1,
        'pull.url': '', 'metrics_dir': 'textfile', 'timeout': -5},
     ['colour', 'kubernetes.extra', 'kubernetes.scheduler', 'kubernetes.service_cidrs[0]', 'metrics_dir',
      'node.modprobe', 'node.modules[0]', 'node.sysctl.IP_FORWARD', 'node.sysctl.net.ipv4.vs.expire_nodest_conn',
      'pull.url', 'static.extra', 'static.services[0].port', 'timeout', 'version']),
]


@pytest.mark.parametrize('edits, fields', [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_input_is_one_error_naming_every_field(tmp_path, edits, fields):
    with pytest.raises(ValidationError) as error:
        config.parse(edited(tmp_path, document(tmp_path), edits))
    assert field_paths(error.value.problems) == sorted(fields), error.value.problems


# Every boolean option of the modules the sections take (validate_certs aside: the
# connection reads 'yes'/'no' text as Ansible does, see connection.boolean).
BOOLEANS = sorted(
    [('static', name) for name in config.STATIC_KEYS
     if ipvs_virtual_server.ARGUMENT_SPEC.get(name, {}).get('type') == 'bool']
    + [('kubernetes', name) for name in config.kubernetes_keys() - {'validate_certs'}
       if k8s_service_proxy.ARGUMENT_SPEC[name].get('type') == 'bool'])


@pytest.mark.parametrize('section, name', BOOLEANS, ids=['%s.%s' % row for row in BOOLEANS])
def test_every_boolean_option_refuses_text(tmp_path, section, name):
    """The module would read 'no' as false; bool('no') is true: refused, not misread."""
    with pytest.raises(ValidationError) as error:
        config.parse(edited(tmp_path, document(tmp_path), {'%s.%s' % (section, name): 'no'}))
    assert field_paths(error.value.problems) == ['%s.%s' % (section, name)]


def test_a_problem_in_the_services_file_names_the_file(tmp_path):
    bad = edited(tmp_path, document(tmp_path), {'static.services_file': File([dict(STATIC_SERVICES[0], port=70000)])})
    with pytest.raises(ValidationError) as error:
        config.parse(bad)
    assert error.value.problems == ['config: static.services[0].port: 70000 is out of range 1-65535 (%s)'
                                    % bad['static']['services_file']]


@pytest.mark.parametrize('text, words', [
    pytest.param(None, 'no such file', id='missing'),
    pytest.param('{"version": 1,', 'not JSON', id='not JSON'),
    pytest.param('["node"]', 'a JSON object is expected, not list', id='not an object'),
    pytest.param('{"timeout": 0}', 'timeout:', id='a bad field'),
])
def test_load_names_the_file(tmp_path, text, words):
    path = tmp_path / 'reconcile.json'
    if text is not None:
        path.write_text(text)
    with pytest.raises(ValidationError) as error:
        config.load(str(path))
    assert len(error.value.problems) == 1
    assert error.value.problems[0].startswith('%s: ' % path) and words in error.value.problems[0]


def test_load_reads_a_valid_file(tmp_path):
    path = tmp_path / 'reconcile.json'
    path.write_text(json.dumps(document(tmp_path)))
    assert config.load(str(path)) == config.parse(document(tmp_path))


def test_the_sections_take_only_the_modules_options():
    """A node option is a module option of the same name: the role renders both from
    the same inventory variables, so neither may drift from the other."""
    static_options = config.STATIC_KEYS - {'services_file'}
    assert static_options <= set(ipvs_virtual_server.ARGUMENT_SPEC), static_options - set(
        ipvs_virtual_server.ARGUMENT_SPEC)
    assert config.kubernetes_keys() <= set(k8s_service_proxy.ARGUMENT_SPEC), config.kubernetes_keys() - set(
        k8s_service_proxy.ARGUMENT_SPEC)
    # Every option that shapes a sync reaches the node; what it leaves out is the task's business.
    assert set(k8s_service_proxy.ARGUMENT_SPEC) - config.kubernetes_keys() == {
        'apply', 'return_services', 'return_actions', 'return_limit'}


@pytest.mark.parametrize('defaults, spec', [
    pytest.param(config.STATIC_DEFAULTS, ipvs_virtual_server.ARGUMENT_SPEC, id='static'),
    pytest.param(dict((name, value) for name, value in pipeline.DEFAULTS.items()),
                 k8s_service_proxy.ARGUMENT_SPEC, id='kubernetes'),
])
def test_the_defaults_are_the_modules_defaults(defaults, spec):
    assert defaults == dict((name, spec[name].get('default')) for name in defaults)


@pytest.mark.parametrize('text, metrics_dir', [
    pytest.param('{"metrics_dir": "/var/lib/node_exporter", "timeout": 0}', '/var/lib/node_exporter',
                 id='in a config that is bad elsewhere'),
    pytest.param('{"metrics_dir": "textfile"}', None, id='relative'),
    pytest.param('{"metrics_dir": 7}', None, id='not a path'),
    pytest.param('{"metrics_dir": "/x",', None, id='not JSON'),
    pytest.param('["/x"]', None, id='not an object'),
    pytest.param(None, None, id='no file'),
])
def test_metrics_dir_of(tmp_path, text, metrics_dir):
    """Where a run whose config is bad still reports its failure."""
    path = tmp_path / 'reconcile.json'
    if text is not None:
        path.write_text(text)
    assert config.metrics_dir_of(str(path)) == metrics_dir
