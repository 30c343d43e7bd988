# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The kube_proxy_config filter: the rendered dict and text, an AnsibleFilterError naming
every refused variable, warnings shown only when asked."""

from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.netlb.ipvs.plugins.filter import kube_proxy_config as plugin


class Tagged(int):
    """Stands for the int subclasses Ansible's templating hands over."""


def test_renders_config_text_and_warnings(monkeypatch):
    shown = []
    monkeypatch.setattr(plugin.display, 'warning', shown.append)
    result = plugin.FilterModule().filters()['kube_proxy_config']({'kube_proxy_conntrack_min': Tagged(7)})
    assert yaml.safe_load(result['text']) == result['config']
    assert result['config']['conntrack']['min'] == 7 and result['config']['conntrack']['min'].__class__ is int
    assert shown == result['warnings'] and 'deprecated upstream' in shown[0]


def test_warn_false_only_returns_them(monkeypatch):
    shown = []
    monkeypatch.setattr(plugin.display, 'warning', shown.append)
    assert plugin.kube_proxy_config({}, warn=False)['warnings'] and shown == []


def test_refused_variables_are_one_error_naming_each():
    with pytest.raises(AnsibleFilterError) as caught:
        plugin.kube_proxy_config({'kube_proxy_masquerade_bit': 40, 'kube_proxy_bind_address': 'any'})
    assert str(caught.value) == (
        "kube-proxy configuration refused (2 problems): kube_proxy_bind_address: 'any' is not a bare IP address "
        '(no port, no brackets); kube_proxy_masquerade_bit: 40 is not a fwmark bit (0-31)')


def test_not_a_dict():
    with pytest.raises(AnsibleFilterError, match='expects a dict of kube_proxy_\\* variables, got list'):
        plugin.kube_proxy_config([])
