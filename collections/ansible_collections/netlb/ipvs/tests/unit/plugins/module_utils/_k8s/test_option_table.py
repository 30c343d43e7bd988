# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One place for each default: k8s_service_proxy's option table. What shows a default to
the user (the argument spec, the DOCUMENTATION) is the table's; the code that needs a
default reads it from the table, and a second literal of one is refused (the playbooks'
and roles' copies: tests/roles/test_option_defaults.py)."""

from __future__ import annotations

import ast
import os

import pytest
import yaml

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import option_table
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.module_connection import AUTH_ARG_SPEC

PLUGINS = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '..', 'plugins'))
K8S = os.path.join(PLUGINS, 'module_utils', '_k8s')
# The records and the dict that hold defaults, and the fields that have none on purpose.
RECORDS = [('cluster.py', 'ProxyOptions'), ('options.py', 'SyncOptions')]
NO_DEFAULT = {'service_cidrs'}  # a sync is given the cluster's (the module's default is the table's)


def _tree(*parts):
    with open(os.path.join(*parts)) as handle:
        return ast.parse(handle.read())


def _literals(node):
    """The constants written in an expression (names, attributes and calls read elsewhere)."""
    return [each.value for each in ast.walk(node) if isinstance(each, ast.Constant)]


def test_the_argument_spec_is_the_table_and_the_connection_options():
    from ansible_collections.netlb.ipvs.plugins.modules import k8s_service_proxy
    spec = dict(k8s_service_proxy.ARGUMENT_SPEC)
    assert {name: spec.pop(name) for name in AUTH_ARG_SPEC} == AUTH_ARG_SPEC
    assert spec == option_table.argument_spec()


def test_the_documentation_says_what_the_table_holds():
    from ansible_collections.netlb.ipvs.plugins.modules import k8s_service_proxy
    documented = yaml.safe_load(k8s_service_proxy.DOCUMENTATION)['options']
    assert list(documented) == [option.name for option in option_table.OPTIONS]  # every one, in order
    for option in option_table.OPTIONS:
        doc = dict((key, value) for key, value in documented[option.name].items() if key != 'description')
        assert doc == option.spec(), option.name


def test_the_leftovers_state_path_is_the_tables():
    # k8s_kube_proxy_leftovers reads k8s_service_proxy's state file: its default is the table's.
    from ansible_collections.netlb.ipvs.plugins.modules import k8s_kube_proxy_leftovers
    leftovers_doc = yaml.safe_load(k8s_kube_proxy_leftovers.DOCUMENTATION)['options']['state_path']
    assert leftovers_doc['default'] == k8s_kube_proxy_leftovers.ARGUMENT_SPEC['state_path']['default'] \
        == option_table.DEFAULTS['state_path']


@pytest.mark.parametrize('source, record', RECORDS, ids=[record for _source, record in RECORDS])
def test_the_records_write_no_default_of_their_own(source, record):
    """Each field's default is read from the table (a name, a subscript, a call), never
    written: a literal here would be a second place for the same fact. The fields without
    a default on purpose are the empty tuple."""
    body = next(node for node in ast.walk(_tree(K8S, source))
                if isinstance(node, ast.ClassDef) and node.name == record).body
    fields = [node for node in body if isinstance(node, ast.AnnAssign) and node.value is not None]
    assert fields
    written = {}
    for field in fields:
        name = field.target.id
        if name in NO_DEFAULT:
            assert isinstance(field.value, ast.Tuple) and not field.value.elts, name
        else:
            # The table's keys are names, not values: RECORD_DEFAULTS['scheduler'] is fine.
            values = [value for value in _literals(field.value) if value not in option_table.RECORD_DEFAULTS]
            if values:
                written[name] = values
    assert written == {}


def test_the_pipeline_writes_no_default_of_its_own():
    """pipeline.DEFAULTS names the options it reads; their values are the table's."""
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import pipeline
    tree = _tree(K8S, 'pipeline.py')
    value = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and [target.id for target in node.targets if isinstance(target, ast.Name)] == ['DEFAULTS'])
    assert set(_literals(value)) <= set(option_table.DEFAULTS)
    assert pipeline.DEFAULTS == dict((name, option_table.DEFAULTS[name]) for name in pipeline.DEFAULTS)


def _distinctive():
    """The table's defaults no other code could write by chance: str values but words and
    the choices (a scheduler flag such as 'mh-port' is the model's name before it is a default)."""
    values = set()
    for option in option_table.OPTIONS:
        for value in option.default if isinstance(option.default, tuple) else (option.default,):
            if isinstance(value, str) and any(mark in value for mark in '/-.') and value not in (option.choices or ()):
                values.add(value)
    return values


def test_a_default_is_written_once_in_the_collections_code():
    """'kube-ipvs0', the node port range, the service CIDR, the state paths: as a value in
    the code only in the table (the drain state's path: in _ipvs/drain_state.py, whose
    option it is first). A copy anywhere else fails here; documentation strings are text."""
    home = {os.path.join(K8S, 'option_table.py')}
    owners = {'/var/lib/netlb-ipvs/drain-state.json': os.path.join(PLUGINS, 'module_utils', '_ipvs', 'drain_state.py')}
    distinctive = _distinctive()
    assert {'kube-ipvs0', '30000-32767', '10.96.0.0/12', option_table.STATE_PATH} <= distinctive
    copies = []
    for folder, _dirs, files in os.walk(PLUGINS):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            for value in set(_literals(_tree(path))) & distinctive:
                if path not in home and owners.get(value) != path:
                    copies.append((os.path.relpath(path, PLUGINS), value))
    assert sorted(copies) == []
