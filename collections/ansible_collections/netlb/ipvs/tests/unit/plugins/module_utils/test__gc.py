# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_gc.paused() and _gc.tuned(): the process as the shell wants it inside, as found
after; and library code (engine, translator, both backends, the netlink batches) never
touches the collector or the thread switch interval, during a call or after it."""

from __future__ import annotations

import ast
import contextlib
import gc
import ipaddress
import os
import sys

import pytest

from kube_api.objects import (
    endpoint,
    endpoint_slice,
    service,
    service_port,
    slice_port,
)

from ansible_collections.netlb.ipvs.plugins.module_utils import _gc
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import engine, model, save_format
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.ipvsadm import IpvsadmBackend
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.netlink import NetlinkBackend
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import RealServer, ServiceKey, VirtualService
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import translate as translator
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ProxyOptions
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import generic
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.backends.conftest import FakeKernel
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import FakeBackend
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s.snapshots import node, snapshot

DEFAULT_INTERVAL = 0.005  # Python's own


@pytest.fixture(autouse=True)
def process_as_python_starts():
    """Each test starts with the collector on and the default switch interval, and puts
    them back whatever it did."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(DEFAULT_INTERVAL)
    gc.enable()
    yield
    gc.enable()
    sys.setswitchinterval(interval)


def process_state():
    return gc.isenabled(), sys.getswitchinterval()


UNTOUCHED = (True, DEFAULT_INTERVAL)


@pytest.mark.parametrize('enabled, fail', [
    pytest.param(True, False, id='restored'),
    pytest.param(True, True, id='restored-after-error'),
    pytest.param(False, False, id='left-off-if-it-was-off'),
])
def test_paused(enabled, fail):
    (gc.enable if enabled else gc.disable)()
    with pytest.raises(ValueError) if fail else contextlib.nullcontext():
        with _gc.paused():
            assert not gc.isenabled()
            if fail:
                raise ValueError('boom')
    assert gc.isenabled() is enabled


@pytest.mark.parametrize('fail', [False, True])
def test_tuned_pauses_and_shortens_then_restores_both(fail):
    with pytest.raises(ValueError) if fail else contextlib.nullcontext():
        with _gc.tuned():
            assert process_state() == (False, _gc.SWITCH_INTERVAL)
            if fail:
                raise ValueError('boom')
    assert process_state() == UNTOUCHED


def test_tuned_never_lengthens_a_shorter_interval():
    sys.setswitchinterval(0.0005)
    with _gc.tuned():
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert sys.getswitchinterval() == pytest.approx(0.0005)


# --------------------------------------------------------------------------- library calls

WEB = ServiceKey.tcp_udp('tcp', '10.0.0.1', 80)
SCOPE = model.Scope(networks=(ipaddress.ip_network('10.0.0.0/8'),))


def many_services(count):
    return model.table_of(VirtualService(ServiceKey.tcp_udp('tcp', '10.1.%d.%d' % (i // 250, i % 250 + 1), 80), 'rr',
                                         real_servers=(RealServer('10.244.0.%d' % (i % 250 + 1), 8080),))
                          for i in range(count))


class Watching(FakeKernel):
    """The fake kernel, noting the process state at every send and receive."""

    def __init__(self):
        super(Watching, self).__init__()
        self.seen = set()

    def send(self, data):
        self.seen.add(process_state())
        return super(Watching, self).send(data)

    def recv_into(self, buffer, size, flags=0):
        self.seen.add(process_state())
        return super(Watching, self).recv_into(buffer, size, flags)


def test_netlink_reads_and_batched_applies_leave_the_process_alone(monkeypatch):
    monkeypatch.setattr(generic, 'BATCH_COUNT', 8)  # several batches: the next built in a thread
    kernel = Watching()
    backend = NetlinkBackend(sock=kernel)
    desired = many_services(40)
    result = engine.reconcile(backend, desired, SCOPE)
    assert len(result.actions) == 80 and backend.read() == desired
    backend.read_counters([WEB])
    backend.read_traffic()
    assert kernel.seen == {UNTOUCHED}


def test_engine_reconcile_leaves_the_process_alone():
    seen = []

    class Backend(FakeBackend):
        def read(self):
            seen.append(process_state())
            return super(Backend, self).read()

    engine.reconcile(Backend(), many_services(3), SCOPE)
    assert seen and set(seen) == {UNTOUCHED}
    assert process_state() == UNTOUCHED


def test_ipvsadm_read_leaves_the_process_alone(monkeypatch):
    seen = []
    parse = save_format.parse

    def watched(text):
        seen.append(process_state())
        return parse(text)

    monkeypatch.setattr(save_format, 'parse', watched)
    backend = IpvsadmBackend(runner=None)
    monkeypatch.setattr(backend, '_text', lambda args: '-A -t 10.0.0.1:80 -s rr\n' if '-S' in args else '')
    assert list(backend.read()) == [WEB]
    assert seen == [UNTOUCHED]


def test_translate_leaves_the_process_alone(monkeypatch):
    seen = []
    run = translator._Translator.run  # pylint: disable=protected-access

    def watched(self):
        seen.append(process_state())
        return run(self)

    monkeypatch.setattr(translator._Translator, 'run', watched)  # pylint: disable=protected-access
    objects = [service('web', '10.96.0.10', ports=[service_port(80, name='http')]),
               endpoint_slice('web', [endpoint('10.244.1.5')], ports=[slice_port(8080, name='http')])]
    result = translator.translate(snapshot(objects), node(), ProxyOptions())
    assert [str(vs.key) for vs in result.services] == ['tcp 10.96.0.10:80']
    assert seen == [UNTOUCHED]
    assert process_state() == UNTOUCHED


# Calls that change the whole process; module_utils may make none (_gc.py holds the
# shells' tools), nor open those tools itself.
PROCESS_WIDE = {('gc', 'disable'), ('gc', 'enable'), ('gc', 'freeze'), ('gc', 'set_threshold'),
                ('sys', 'setswitchinterval'), ('sys', 'setrecursionlimit'), ('signal', 'signal'),
                ('signal', 'alarm'), ('os', 'umask'), ('os', 'chdir'), ('socket', 'setdefaulttimeout'),
                ('locale', 'setlocale'), ('_gc', 'paused'), ('_gc', 'tuned')}
MODULE_UTILS = os.path.dirname(os.path.abspath(_gc.__file__))


def process_wide_calls(path):
    with open(path) as handle:
        tree = ast.parse(handle.read(), path)
    return ['%s:%d %s.%s()' % (os.path.relpath(path, MODULE_UTILS), node.lineno, node.func.value.id, node.func.attr)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in PROCESS_WIDE]


def test_no_module_utils_changes_the_whole_process():
    found = []
    for directory, _dirs, files in os.walk(MODULE_UTILS):
        for name in files:
            path = os.path.join(directory, name)
            if name.endswith('.py') and path != os.path.abspath(_gc.__file__):
                found.extend(process_wide_calls(path))
    assert found == []
    assert process_wide_calls(os.path.abspath(_gc.__file__))  # the check sees such calls
