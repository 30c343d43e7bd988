# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Doubles shared by the reconcile tests: a command runner that answers from a script,
a /proc tree in a temporary directory, a tiny Prometheus text parser and a logfmt one,
and Node, one node for netlb-ipvs runs (the in-memory kernel table of _ipvs/fakes.py,
the node double of _k8s/test_proxy.py, and every path of the run in tmp_path)."""

from __future__ import annotations

import functools
import json
import os
import re

from kube_api import objects

from ansible_collections.netlb.ipvs.plugins.module_utils._command import Runner
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import validation
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import pipeline
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import kernel, run, status
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import FakeBackend, table
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s.test_proxy import FOREIGN, FakeHost

# A line of /proc/modules as the kernel writes it (name size refcount holders state address).
PROC_MODULE_LINE = '%s 180224 6 - Live 0x0000000000000000'

# The static table of the runs: two services in 198.51.100.0/24 (FOREIGN is outside it).
STATIC_SCOPE = ['198.51.100.0/24']
STATIC_SERVICES = [
    {'protocol': 'tcp', 'address': '198.51.100.10', 'port': 80, 'scheduler': 'wlc',
     'real_servers': [{'address': '10.1.0.1', 'port': 8080}, {'address': '10.1.0.2', 'port': 8080}]},
    {'protocol': 'udp', 'address': '198.51.100.11', 'port': 53,
     'real_servers': [{'address': '10.1.0.3', 'port': 53}]},
]


class ScriptedRunner(Runner):
    """A Runner whose programs are answered from a script: answers maps the program's
    name (argv[0]'s basename) to (rc, stdout, stderr); a program not in it fails the
    test. calls: every argv run; timeouts: the timeout of each run."""

    def __init__(self, answers=None):
        super(ScriptedRunner, self).__init__(module=None)
        self.answers = dict(answers or {})
        self.calls = []
        self.timeouts = []

    def which(self, name, required=True):
        return '/usr/sbin/%s' % name

    def _execute(self, argv, data, timeout=None):
        self.calls.append(list(argv))
        self.timeouts.append(timeout)
        name = os.path.basename(argv[0])
        if name not in self.answers:
            raise AssertionError('unexpected command: %s' % ' '.join(argv))
        return self.answers[name]


def proc_tree(root, modules=(), sysctl=None, builtin=()):
    """root/proc and root/sys/module as the kernel shows them: modules loaded (lines of
    /proc/modules), sysctl files {key: text}, built-in modules (directories of
    /sys/module only). Returns (proc, sys_module) paths."""
    proc, sys_module = os.path.join(str(root), 'proc'), os.path.join(str(root), 'sys', 'module')
    os.makedirs(proc, exist_ok=True)
    os.makedirs(sys_module, exist_ok=True)
    with open(os.path.join(proc, 'modules'), 'w') as handle:
        handle.write(''.join(PROC_MODULE_LINE % name + '\n' for name in modules))
    for name in list(modules) + list(builtin):
        os.makedirs(os.path.join(sys_module, name), exist_ok=True)
    for key, text in (sysctl or {}).items():
        path = kernel.sysctl_path(key, os.path.join(proc, 'sys'))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            handle.write(text)
    return proc, sys_module


# ------------------------------------------------------------------ parsers
_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"(?:,|$)')
_UNESCAPE = {'\\': '\\', '"': '"', 'n': '\n'}


def _unescape(text):
    return re.sub(r'\\(.)', lambda match: _UNESCAPE[match.group(1)], text)


def parse_prometheus(text):
    """Prometheus text format 0.0.4 -> {name: {'help', 'type', 'samples': {labels: value}}},
    labels a sorted tuple of (key, value). AssertionError on anything the format forbids:
    a sample before its family's HELP and TYPE, a family described twice, a bad line."""
    families, current = {}, None
    assert text.endswith('\n'), 'the last line must end with a newline'
    for line in text[:-1].split('\n'):
        if line.startswith('# HELP '):
            name, _sep, help_text = line[len('# HELP '):].partition(' ')
            assert name not in families, 'family %s described twice' % name
            families[name] = {'help': help_text, 'type': None, 'samples': {}}
            current = name
        elif line.startswith('# TYPE '):
            name, _sep, kind = line[len('# TYPE '):].partition(' ')
            assert name == current and families[name]['type'] is None, 'TYPE of %s not right after its HELP' % name
            assert kind in ('counter', 'gauge'), line
            families[name]['type'] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, 'not a sample line: %r' % line
            name = match.group('name')
            assert name == current and families[name]['type'], 'sample of %s outside its family' % name
            labels, rest = [], match.group('labels') or ''
            while rest:
                label = _LABEL.match(rest)
                assert label, 'bad labels in %r' % line
                labels.append((label.group('key'), _unescape(label.group('value'))))
                rest = rest[label.end():]
            value = float(match.group('value'))
            families[name]['samples'][tuple(sorted(labels))] = value
    return families


_LOGFMT = re.compile(r'(?P<key>[a-z_]+)=(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s"]*))(?: |$)')


def parse_logfmt(line):
    """One logfmt line -> [(key, value)]; AssertionError when any part is not key=value."""
    assert '\n' not in line, line
    pairs, position = [], 0
    while position < len(line):
        match = _LOGFMT.match(line, position)
        assert match and match.end() > position, 'not logfmt at %r' % line[position:]
        quoted = match.group('quoted')
        pairs.append((match.group('key'), _unescape(quoted) if quoted is not None else match.group('bare')))
        position = match.end()
    return pairs


# ------------------------------------------------------------------ one node
class Node(object):
    """One node for whole runs. Everything the run touches is in tmp_path: the config,
    the status, the pause switch and the lock (paths), the textfile (metrics_dir), the
    services file, the drain and proxy state, /proc and /sys/module (kernel.ensure's
    roots). The kernel table is backend.table (FOREIGN to start with), the node's
    addresses and rules are host."""

    def __init__(self, tmp_path, monkeypatch):
        self.tmp = tmp_path
        self.backend, self.host = FakeBackend(table(FOREIGN)), FakeHost()
        self.runner = ScriptedRunner()
        self.metrics_dir = str(tmp_path / 'textfile')
        os.makedirs(self.metrics_dir)
        self.paths = run.Paths(config=str(tmp_path / 'reconcile.json'), lock=str(tmp_path / 'run' / 'reconcile.lock'),
                               status=str(tmp_path / 'state' / 'reconcile-status.json'),
                               pause=str(tmp_path / 'state' / 'reconcile.paused'))
        os.makedirs(os.path.dirname(self.paths.status))
        self.services_file = str(tmp_path / 'services.json')
        self.proc, self.sys_module = proc_tree(tmp_path, modules=['ip_vs'], sysctl={'net.ipv4.ip_forward': '1\n'})

        def get_backend(name, runner=None, check_mode=False):
            self.backend.check_mode = check_mode
            return self.backend

        monkeypatch.setattr(run, 'get_backend', get_backend)
        monkeypatch.setattr(pipeline, 'get_backend', get_backend)
        monkeypatch.setattr(pipeline, 'HostNode', lambda runner: self.host)
        monkeypatch.setattr(kernel, 'ensure', functools.partial(kernel.ensure, proc=self.proc,
                                                                sys_module=self.sys_module))

    def write_services(self, services):
        with open(self.services_file, 'w') as handle:
            json.dump(services, handle)

    def static(self, services=None, **options):
        """A static section on services (STATIC_SERVICES by default), written to the file."""
        self.write_services(STATIC_SERVICES if services is None else services)
        return dict({'services_file': self.services_file, 'scope': STATIC_SCOPE,
                     'drain_state_path': str(self.tmp / 'drain-state.json')}, **options)

    def kubernetes(self, kube_api, **options):
        """A kubernetes section reading kube_api, state files in tmp_path."""
        return dict({'kubeconfig': kube_api.write_kubeconfig(str(self.tmp / 'kubeconfig')),
                     'node_name': objects.NODE, 'node_zone': objects.ZONE, 'service_cidrs': ['10.96.0.0/12'],
                     'cluster_cidrs': ['10.244.0.0/16'], 'state_path': str(self.tmp / 'proxy-state.json'),
                     'drain_state_path': str(self.tmp / 'k8s-drain-state.json')}, **options)

    def write_config(self, static=None, kubernetes=None, **top):
        document = dict({'version': 1, 'node': {'modules': ['ip_vs'], 'sysctl': {'net.ipv4.ip_forward': 1}},
                         'static': static, 'kubernetes': kubernetes, 'metrics_dir': self.metrics_dir}, **top)
        with open(self.paths.config, 'w') as handle:
            json.dump(document, handle)
        return document

    def reconcile(self, **kwargs):
        return run.reconcile(self.runner, paths=self.paths, **kwargs)

    def status(self):
        return status.load(self.paths.status)

    def metrics(self):
        with open(os.path.join(self.metrics_dir, status.METRICS_FILE)) as handle:
            return parse_prometheus(handle.read())

    def in_scope(self):
        """The kernel table's services in the static scope, as ipvsadm -S would list them."""
        scope = validation.parse_request({'services': [], 'scope': STATIC_SCOPE}).scope
        return dict((key, service) for key, service in self.backend.table.items() if scope.contains(key))

    def foreign(self):
        """The kernel table's entries that FOREIGN put there."""
        return dict((key, self.backend.table.get(key)) for key in table(FOREIGN))


def sample(families, name, **labels):
    return families[name]['samples'][tuple(sorted(labels.items()))]
