# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kube_proxy role's defaults, argument specs and README hold the renderer's table:
one field, one default, wherever it is written."""

import os

import yaml

from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy import config as kp

ROLE = os.path.join(os.path.dirname(__file__), '..', '..', 'roles', 'kube_proxy')


def load(*parts):
    with open(os.path.join(ROLE, *parts)) as handle:
        return yaml.safe_load(handle)


def test_role_defaults_equal_the_renderer_table():
    defaults = load('defaults', 'main.yml')
    assert {name: defaults[name] for name in kp.DEFAULTS} == kp.DEFAULTS


def test_argument_specs_list_every_default_with_its_value():
    defaults = load('defaults', 'main.yml')
    options = load('meta', 'argument_specs.yml')['argument_specs']['main']['options']
    assert set(options) == set(defaults)
    assert {name: spec.get('default') for name, spec in options.items()} == defaults
    assert options['kube_proxy_mode']['choices'] == list(kp.MODES)


def test_readme_names_every_variable():
    with open(os.path.join(ROLE, 'README.md')) as handle:
        text = handle.read()
    missing = [name for name in load('defaults', 'main.yml') if '`%s`' % name not in text]
    assert missing == []
