# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read a ClusterSnapshot from files: what `kubectl get -o yaml|json` writes.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    snapshot, ignored = read_manifests('/etc/netlb/cluster', node_name='node1')

A path is one file or a directory; of a directory, the files *.yaml, *.yml and *.json
directly in it (not in subdirectories; hidden files skipped), in name order. A file holds
single objects, `kind: List` or `*List` objects (items; the API's own lists leave out
each item's kind, which comes from the list's kind then), or several YAML documents.
v1 Service, discovery.k8s.io/v1 EndpointSlice and v1 Endpoints go into the snapshot, and
the Node named node_name; other kinds are counted in `ignored` (kind -> count), other
Nodes skipped. A file that is missing or does not parse is a SourceError naming it
(and the line, when the parser knows it).
"""

from __future__ import annotations

import json
import os

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ClusterSnapshot, SourceError

try:
    import yaml
    # The C loader parses several times faster; plain SafeLoader when libyaml is absent.
    YAML_LOADER = getattr(yaml, 'CSafeLoader', None) or yaml.SafeLoader
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError as err:
    HAS_YAML = False
    YAML_IMPORT_ERROR = err

EXTENSIONS = ('.yaml', '.yml', '.json')

# (apiVersion, kind) -> snapshot field
_WANTED = {
    ('v1', 'Service'): 'services',
    ('discovery.k8s.io/v1', 'EndpointSlice'): 'endpoint_slices',
    ('v1', 'Endpoints'): 'endpoints',
}


def manifest_files(path):
    """The files a path stands for, in reading order (SourceError if there is none)."""
    if os.path.isdir(path):
        try:
            names = sorted(os.listdir(path))
        except OSError as err:
            raise SourceError('reading manifests from %s: %s' % (path, err.strerror or err))
        return [os.path.join(path, name) for name in names
                if name.endswith(EXTENSIONS) and not name.startswith('.')
                and os.path.isfile(os.path.join(path, name))]
    if not os.path.exists(path):
        raise SourceError('reading manifests from %s: no such file or directory' % path)
    return [path]


def _documents(path):
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except OSError as err:
        raise SourceError('reading manifests from %s: %s' % (path, err.strerror or err))
    if path.endswith('.json'):
        try:
            return [json.loads(data)]
        except ValueError as err:
            line = getattr(err, 'lineno', None)
            raise SourceError('reading manifests from %s%s: not valid JSON: %s'
                              % (path, ' line %d' % line if line else '', getattr(err, 'msg', err)))
    if not HAS_YAML:
        raise SourceError('reading manifests from %s: YAML needs the Python library PyYAML '
                          '(Debian: python3-yaml; pip: pyyaml): %s' % (path, YAML_IMPORT_ERROR))
    try:
        return list(yaml.load_all(data, Loader=YAML_LOADER))
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        problem = getattr(err, 'problem', None) or str(err)
        raise SourceError('reading manifests from %s%s: not valid YAML: %s'
                          % (path, ' line %d' % (mark.line + 1) if mark is not None else '',
                             ' '.join(str(problem).split())))


def _objects(document, path, number):
    """The objects of one document, lists flattened."""
    if document is None:
        return []
    if not isinstance(document, dict):
        raise SourceError('reading manifests from %s: document %d is not an object' % (path, number))
    kind = document.get('kind') or ''
    if kind.endswith('List') and isinstance(document.get('items'), list):
        item_kind = kind[:-len('List')] if kind != 'List' else None
        result = []
        for item in document['items']:
            if not isinstance(item, dict):
                raise SourceError('reading manifests from %s: document %d holds an item that is not an object'
                                  % (path, number))
            if item_kind and 'kind' not in item:
                item = dict(item, kind=item_kind, apiVersion=item.get('apiVersion') or document.get('apiVersion'))
            result.extend(_objects(item, path, number))
        return result
    return [document]


def read_manifests(path, node_name=None):
    """(ClusterSnapshot, ignored) from a file or directory; ignored: kind -> count of
    objects of kinds the snapshot does not hold. Raises SourceError."""
    fields = {'services': [], 'endpoint_slices': [], 'endpoints': []}
    ignored = {}
    node = None
    for name in manifest_files(path):
        for number, document in enumerate(_documents(name), 1):
            for obj in _objects(document, name, number):
                key = (obj.get('apiVersion'), obj.get('kind'))
                if key in _WANTED:
                    fields[_WANTED[key]].append(obj)
                elif key == ('v1', 'Node'):
                    if node_name and (obj.get('metadata') or {}).get('name') == node_name:
                        node = obj
                else:
                    label = ' '.join(str(part) for part in key if part) or '(no kind)'
                    ignored[label] = ignored.get(label, 0) + 1
    return ClusterSnapshot(node=node, origin=path, **fields), ignored
