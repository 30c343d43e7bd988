# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The manifest source: every layout `kubectl get -o yaml|json` writes, and files that
do not parse."""

from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import manifests
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources.manifests import read_manifests
from kube_api import objects

WEB = objects.service('web')
WEB_SLICE = objects.endpoint_slice('web', ['10.244.0.5', '10.244.0.6'])
EXT = objects.service('ext', selector=None)
EXT_ENDPOINTS = objects.endpoints('ext', ['192.0.2.5'])
NODE1 = objects.node_object('node1', zone='z1')
NODE2 = objects.node_object('node2', zone='z2')
POD = {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'p', 'namespace': 'default'}}
ALL = [WEB, WEB_SLICE, EXT, EXT_ENDPOINTS, NODE1, NODE2, POD]


def api_list(kind, api_version, items):
    """A list as the API itself answers: items without kind and apiVersion."""
    bare = [{key: value for key, value in item.items() if key not in ('kind', 'apiVersion')} for item in items]
    return {'apiVersion': api_version, 'kind': kind + 'List', 'metadata': {'resourceVersion': '1'}, 'items': bare}


# layout id -> {file name: text}
LAYOUTS = {
    'kubectl List (yaml)': {'all.yaml': yaml.safe_dump({'apiVersion': 'v1', 'kind': 'List', 'items': ALL})},
    'kubectl List (json)': {'all.json': json.dumps({'apiVersion': 'v1', 'kind': 'List', 'items': ALL})},
    'multi-document yaml': {'all.yml': yaml.safe_dump_all(ALL)},
    'typed API lists (json)': {
        'services.json': json.dumps(api_list('Service', 'v1', [WEB, EXT])),
        'slices.json': json.dumps(api_list('EndpointSlice', 'discovery.k8s.io/v1', [WEB_SLICE])),
        'endpoints.json': json.dumps(api_list('Endpoints', 'v1', [EXT_ENDPOINTS])),
        'nodes.json': json.dumps(api_list('Node', 'v1', [NODE1, NODE2])),
        'pods.yaml': yaml.safe_dump(api_list('Pod', 'v1', [POD])),
    },
    'one object per file': dict(('%02d.yaml' % index, yaml.safe_dump(obj)) for index, obj in enumerate(ALL)),
    'lists inside a list, empty documents': {'mixed.yaml': '---\n' + yaml.safe_dump({
        'apiVersion': 'v1', 'kind': 'List',
        'items': [api_list('Service', 'v1', [WEB, EXT]), WEB_SLICE, EXT_ENDPOINTS, NODE1, NODE2, POD],
    }) + '---\n---\n'},
}


def write(directory, files):
    for name, text in files.items():
        (directory / name).write_text(text)


def brief(snapshot):
    return {
        'services': sorted(item['metadata']['name'] for item in snapshot.services),
        'slices': [item['metadata']['name'] for item in snapshot.endpoint_slices],
        'endpoints': [item['metadata']['name'] for item in snapshot.endpoints],
        'node': snapshot.node['metadata']['labels'][objects.ZONE_LABEL] if snapshot.node else None,
    }


@pytest.mark.parametrize('files', list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_every_layout_gives_the_same_snapshot(tmp_path, files):
    write(tmp_path, files)
    snapshot, ignored = read_manifests(str(tmp_path), node_name='node2')
    assert brief(snapshot) == {'services': ['ext', 'web'], 'slices': ['web-abcde'], 'endpoints': ['ext'], 'node': 'z2'}
    assert ignored == {'v1 Pod': 1}
    assert snapshot.origin == str(tmp_path)
    # Items of the API's own lists get their kind back; the objects are otherwise as written.
    assert [item['kind'] for item in snapshot.services] == ['Service', 'Service']
    assert snapshot.endpoint_slices[0]['endpoints'] == WEB_SLICE['endpoints']


def test_a_single_file_and_no_node_name(tmp_path):
    write(tmp_path, LAYOUTS['multi-document yaml'])
    snapshot = read_manifests(str(tmp_path / 'all.yml'))[0]
    assert brief(snapshot)['node'] is None and snapshot.origin == str(tmp_path / 'all.yml')


def test_a_directory_is_read_in_name_order_without_subdirectories_or_other_files(tmp_path):
    write(tmp_path, {'b.yaml': yaml.safe_dump(objects.service('second')),
                     'a.json': json.dumps(objects.service('first')),
                     'notes.txt': 'not a manifest', '.hidden.yaml': ': broken'})
    (tmp_path / 'sub').mkdir()
    write(tmp_path / 'sub', {'c.yaml': yaml.safe_dump(objects.service('nested'))})
    snapshot = read_manifests(str(tmp_path))[0]
    assert [item['metadata']['name'] for item in snapshot.services] == ['first', 'second']
    assert manifests.manifest_files(str(tmp_path)) == [str(tmp_path / 'a.json'), str(tmp_path / 'b.yaml')]


def test_an_empty_directory_is_an_empty_cluster(tmp_path):
    snapshot, ignored = read_manifests(str(tmp_path))
    assert (snapshot.services, snapshot.endpoint_slices, ignored) == ([], [], {})


def test_old_endpointslice_versions_and_kindless_objects_are_ignored(tmp_path):
    old = dict(WEB_SLICE, apiVersion='discovery.k8s.io/v1beta1')
    write(tmp_path, {'x.yaml': yaml.safe_dump_all([old, {'metadata': {'name': 'x'}}, WEB])})
    snapshot, ignored = read_manifests(str(tmp_path))
    assert (brief(snapshot)['slices'], ignored) == ([], {'discovery.k8s.io/v1beta1 EndpointSlice': 1, '(no kind)': 1})


# id, file name, text, message (PATH: the file)
BROKEN = [
    ('yaml syntax', 'bad.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: web\n',
     r'reading manifests from PATH line 4: not valid YAML: '),
    ('yaml tab', 'tab.yml', 'a: 1\n\tb: 2\n', r'reading manifests from PATH line 2: not valid YAML: '),
    ('json', 'bad.json', '{"kind": "Service",\n "metadata": }', r'reading manifests from PATH line 2: not valid JSON: '),
    ('a scalar document', 'scalar.yaml', 'just text\n', r'reading manifests from PATH: document 1 is not an object$'),
    ('a list item that is not an object', 'items.yaml', 'kind: List\nitems: [1]\n',
     r'reading manifests from PATH: document 1 holds an item that is not an object$'),
]


@pytest.mark.parametrize('name, text, pattern', [row[1:] for row in BROKEN], ids=[row[0] for row in BROKEN])
def test_a_file_that_does_not_parse_is_named(tmp_path, name, text, pattern):
    import re
    write(tmp_path, {'00-good.yaml': yaml.safe_dump(WEB), name: text})
    with pytest.raises(SourceError) as caught:
        read_manifests(str(tmp_path))
    message = str(caught.value)
    assert re.match(pattern.replace('PATH', re.escape(str(tmp_path / name))), message), message
    assert '\n' not in message


def test_a_missing_path(tmp_path):
    with pytest.raises(SourceError, match='no such file or directory'):
        read_manifests(str(tmp_path / 'absent'))


def test_without_pyyaml_json_still_works_and_yaml_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(manifests, 'HAS_YAML', False)
    write(tmp_path, {'a.json': json.dumps(WEB)})
    assert len(read_manifests(str(tmp_path))[0].services) == 1
    write(tmp_path, {'b.yaml': yaml.safe_dump(WEB)})
    with pytest.raises(SourceError, match=r'b\.yaml: YAML needs the Python library PyYAML \(Debian: python3-yaml'):
        read_manifests(str(tmp_path))


def test_the_fast_loader_is_used_when_libyaml_is_there():
    assert manifests.YAML_LOADER is (getattr(yaml, 'CSafeLoader', None) or yaml.SafeLoader)
