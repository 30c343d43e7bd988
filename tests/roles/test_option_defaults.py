# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""k8s_service_proxy's defaults as the playbooks, the roles and the example inventory
write them equal the module's option table (_k8s/option_table.py OPTIONS): a default changed
in one place and not the others fails here."""

import os
import re

import pytest
import yaml

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import option_table
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.module_connection import AUTH_ARG_SPEC

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# "{{ k8s_service_proxy_<name> | default(<literal>) [| filter] }}"
_TEMPLATE = re.compile(r'^\{\{ k8s_service_proxy_(\w+) \| default\((.*?)\)( \| \w+)? \}\}$')


def load(*parts):
    with open(os.path.join(REPO, *parts)) as handle:
        return yaml.safe_load(handle)


def _playbook_defaults():
    """name -> the default the playbooks' k8s_service_proxy_options give (None: omit)."""
    found = {}
    for name, template in load('playbooks', 'vars', 'k8s_service_proxy.yml')['k8s_service_proxy_options'].items():
        match = _TEMPLATE.match(template)
        assert match and match.group(1) == name, template
        found[name] = None if match.group(2) == 'omit' else yaml.safe_load(match.group(2))
    return found


def test_the_playbooks_options_default_to_the_table():
    found = _playbook_defaults()
    assert set(found) <= set(option_table.DEFAULTS) | set(AUTH_ARG_SPEC)
    assert found == \
        {name: option_table.DEFAULTS.get(name, AUTH_ARG_SPEC.get(name, {}).get('default')) for name in found}
    # the ones that shape a sync are all there (the return_* and apply are a task's business)
    assert {'service_cidrs', 'node_port_range', 'scheduler_flags', 'families', 'masquerade'} <= set(found)


def test_the_kube_proxy_roles_state_path_is_the_modules():
    defaults = load('roles', 'kube_proxy', 'defaults', 'main.yml')
    assert defaults['kube_proxy_leftovers_state_path'] == option_table.DEFAULTS['state_path']
    specs = load('roles', 'kube_proxy', 'meta', 'argument_specs.yml')['argument_specs']['main']['options']
    assert specs['kube_proxy_leftovers_state_path']['default'] == option_table.DEFAULTS['state_path']


def _inventory_defaults():
    """name -> the text after "Default:" in the example inventory's comment on k8s_service_proxy_<name>."""
    with open(os.path.join(REPO, 'inventories', 'example', 'group_vars', 'kube_nodes', 'k8s_service_proxy.yml')) as handle:
        blocks = handle.read().split('\n\n')
    found = {}
    for block in blocks:
        variable = re.search(r'^#? ?k8s_service_proxy_(\w+):', block, re.M)
        default = re.search(r'Default: (\[[^\]]*\]|[^\s,]+?)(?=[.,]?(\s|$))', ' '.join(block.split()))
        if variable and default:
            found[variable.group(1)] = default.group(1)
    return found


@pytest.mark.parametrize('name', sorted(name for name, value in _playbook_defaults().items() if value is not None))
def test_the_example_inventory_comments_the_tables_default(name):
    found = _inventory_defaults()
    assert name in found, 'inventories/example: k8s_service_proxy_%s has no "Default:"' % name
    assert yaml.safe_load(found[name]) == option_table.DEFAULTS[name]


def test_the_ipvs_reconcile_roles_paths_and_timeout_are_the_entry_points():
    # The role writes the node config and the pause file where `netlb-ipvs` looks for them,
    # and passes its timeout; those defaults are written in _reconcile/ once.
    from ansible_collections.netlb.ipvs.plugins.module_utils._reconcile import config, run, status
    role_vars = load('roles', 'ipvs_reconcile', 'vars', 'main.yml')

    def rendered(name):
        return re.sub(r'\{\{ (\w+) \}\}', lambda match: rendered(match.group(1)), role_vars[name])
    assert rendered('ipvs_reconcile_config_file') == config.DEFAULT_PATH
    assert rendered('ipvs_reconcile_pause_file') == run.PAUSE_PATH
    assert rendered('ipvs_reconcile_state_dir') == os.path.dirname(status.DEFAULT_PATH)
    assert load('roles', 'ipvs_reconcile', 'defaults', 'main.yml')['ipvs_reconcile_timeout'] == config.DEFAULT_TIMEOUT
