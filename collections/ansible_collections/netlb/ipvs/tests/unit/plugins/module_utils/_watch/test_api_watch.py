# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The watcher on the stand-in API server (HTTPS, list then watch, the direct transport):
changes reach the table, a compacted log (410) relists, dropped watches and the API
going away and back are survived with the table intact."""

from __future__ import annotations

import threading

import pytest

from kube_api import objects

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources.watch import Stream, StreamError
from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import config as node_config
from ansible_collections.netlb.ipvs.plugins.module_utils._watch import node as watch_node
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._reconcile.fakes import Node
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._watch.test_loop import (
    expected_table,
    kernel,
    kubernetes_section,
    running,
    wait_for,
)

ZONE_LABEL = 'topology.kubernetes.io/zone'
SLICE = '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-abc'


def web_slice(addresses):
    return objects.endpoint_slice('web', [objects.endpoint(a) for a in addresses], name='web-abc')


def set_endpoints(addresses):
    def change(obj):
        obj['endpoints'] = web_slice(addresses)['endpoints']
    return change


@pytest.fixture
def node(tmp_path, monkeypatch, kube_api):
    for name in ('KUBECONFIG', 'K8S_AUTH_KUBECONFIG'):
        monkeypatch.delenv(name, raising=False)
    node = Node(tmp_path, monkeypatch)
    section = dict(kubernetes_section(tmp_path), kubeconfig=kube_api.write_kubeconfig(str(tmp_path / 'kubeconfig')))
    node.write_config(kubernetes=section)
    kube_api.bookmark_interval = 0.2
    kube_api.add(objects.service('web', cluster_ip='10.96.0.20'), web_slice(['10.244.1.11']))
    return node


def watcher_of(node, lines):
    config = node_config.load(node.paths.config)
    sync = watch_node.NodeSync(config, node.runner, node.paths, lines.append, backend=node.backend)
    source = watch_node.source_of(sync.node.params, sync.node.node_name)
    source.finish = lambda: None  # running() ends scripted sources this way
    return watch_node.Watcher(source, sync, min_sync=0.02, log=lines.append, backoff_first=0.05, backoff_max=0.2)


def test_changes_410_and_an_api_that_goes_away_are_followed(node, kube_api):
    lines = []
    watcher = watcher_of(node, lines)
    assert watcher.streams == [Stream('Service', None), Stream('EndpointSlice', None)]
    with running(watcher, watcher.source):
        wait_for(lambda: kernel(node) == expected_table(objects.service('web', cluster_ip='10.96.0.20'),
                                                        web_slice(['10.244.1.11'])))
        kube_api.update(SLICE, set_endpoints(['10.244.1.11', '10.244.1.12']))
        want = expected_table(objects.service('web', cluster_ip='10.96.0.20'), web_slice(['10.244.1.11', '10.244.1.12']))
        wait_for(lambda: kernel(node) == want)
        kube_api.down()  # every watch hangs up, and nothing answers until up()
        wait_for(lambda: watcher.counters.restarts.get('error', 0) >= 2)
        assert kernel(node) == want  # the table stays as it was
        kube_api.update(SLICE, set_endpoints(['10.244.1.12']))
        kube_api.compact()  # the versions the watches stopped at are gone: 410, relist
        kube_api.up()
        want = expected_table(objects.service('web', cluster_ip='10.96.0.20'), web_slice(['10.244.1.12']))
        wait_for(lambda: kernel(node) == want)
        assert watcher.counters.restarts.get('gone', 0) >= 1 and watcher.counters.relists >= 1
        assert watcher.counters.malformed == 0
    assert any('410 Gone' in line for line in lines)


def modified_events(channel, changes, count):
    """List channel, then watch it while changes() runs: the first count MODIFIED events."""
    items, version = channel.list()
    done = threading.Event()
    got = []

    def follow():
        for event in channel.watch(version, 5):
            if event.get('type') == 'MODIFIED':
                got.append(event)
                if len(got) == count:
                    done.set()
                    return

    thread = threading.Thread(target=follow)
    thread.start()
    changes()
    assert done.wait(5)
    thread.join(5)
    return items, got


def test_the_node_stream_follows_its_labels(node, kube_api, tmp_path):
    kube_api.add({'apiVersion': 'v1', 'kind': 'Node',
                  'metadata': {'name': objects.NODE, 'labels': {ZONE_LABEL: 'zone-a'}}},
                 {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': 'other'}})
    config = node_config.load(node.paths.config)
    params = dict(config.kubernetes, node_zone=None, node_name=None)
    # The name parse_options resolves (here the option's; on a node the host's when not set).
    source = watch_node.source_of(params, objects.NODE)
    assert Stream('Node', None) in source.streams()
    channel = source.open(Stream('Node', None))

    def changes():
        kube_api.update('/api/v1/nodes/other', lambda obj: obj['metadata'].update(labels={'a': 'b'}))
        kube_api.update('/api/v1/nodes/%s' % objects.NODE,
                        lambda obj: obj['metadata']['labels'].update({ZONE_LABEL: 'zone-b'}))

    try:
        items, modified = modified_events(channel, changes, 1)
        assert [item['metadata']['name'] for item in items] == [objects.NODE]
        assert [event['object']['metadata']['name'] for event in modified] == [objects.NODE]
    finally:
        channel.close()


def test_events_share_their_field_names_and_keep_the_others(node, kube_api):
    """Each event is decoded on its own: the objects it replaces in the store must not
    hold a copy of every key each (the store would grow with every change)."""
    config = node_config.load(node.paths.config)
    source = watch_node.source_of(dict(config.kubernetes, node_zone=None, node_name=None), objects.NODE)
    channel = source.open(Stream('EndpointSlice', None))

    def changes():
        kube_api.update(SLICE, set_endpoints(['10.244.1.12']))
        kube_api.update(SLICE, lambda obj: obj['metadata']['labels'].update({'team.example/owner': 'x'}))

    try:
        _items, (first, second) = modified_events(channel, changes, 2)
    finally:
        channel.close()

    def key(mapping, name):
        return next(candidate for candidate in mapping if candidate == name)

    for name in ('metadata', 'name', 'labels'):
        assert key(first['object']['metadata'] if name != 'metadata' else first['object'], name) is key(
            second['object']['metadata'] if name != 'metadata' else second['object'], name)
    assert first['object']['endpoints'][0]['addresses'] == ['10.244.1.12']
    assert second['object']['metadata']['labels']['team.example/owner'] == 'x'


def test_an_unreachable_api_is_a_stream_error_naming_it(node, kube_api, tmp_path):
    config = node_config.load(node.paths.config)
    source = watch_node.source_of(config.kubernetes, objects.NODE)
    kube_api.down()
    try:
        channel = source.open(Stream('Service', None))
        with pytest.raises(StreamError, match='reading Services from https://127.0.0.1'):
            channel.list()
        channel.close()
    finally:
        kube_api.up()


def test_a_refused_list_is_a_stream_error(node, kube_api):
    kube_api.fault('status', path='/api/v1/services', code=403, times=None)
    config = node_config.load(node.paths.config)
    channel = watch_node.source_of(config.kubernetes, objects.NODE).open(Stream('Service', None))
    try:
        with pytest.raises(StreamError, match='403'):
            channel.list()
    finally:
        channel.close()


def test_the_node_watched_is_the_one_the_options_resolve(node, kube_api, tmp_path, monkeypatch):
    """No node_name option: the module takes the host's name, and so does the watcher's Node stream."""
    monkeypatch.setattr('socket.gethostname', lambda: objects.NODE)
    section = dict(kubernetes_section(tmp_path), kubeconfig=str(tmp_path / 'kubeconfig'), node_zone=None)
    del section['node_name']
    node.write_config(kubernetes=section)
    out = []
    stop = threading.Event()
    stop.set()  # list nothing, sync nothing: only what it would watch
    assert watch_node.watch(node.runner, node.paths, out.append, out.append, stop, listen=None) == 0
    assert out[0].startswith('watching Services, EndpointSlices, Node from https://127.0.0.1:'), out
