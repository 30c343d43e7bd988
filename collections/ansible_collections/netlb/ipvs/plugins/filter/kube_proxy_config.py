# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
name: kube_proxy_config
short_description: Render and validate kube-proxy's KubeProxyConfiguration from kube_proxy_* variables
version_added: 0.3.0
description:
  - Turns a dict of C(kube_proxy_*) variables (named as kubespray names them) into a
    C(KubeProxyConfiguration) of C(kubeproxy.config.k8s.io/v1alpha1), with the checks kube-proxy itself
    applies, so a bad value fails the play instead of crash-looping kube-proxy.
  - Missing variables take the defaults of the C(kube_proxy) role. Variables that are not kube-proxy
    settings are ignored.
  - Sync periods go in the section of the chosen mode; sections of other modes are not written.
  - Every problem is reported at once, each naming its variable.
  - Warns (once per run) that kube-proxy's IPVS mode is deprecated upstream, and about a scheduler the
    kernel does not know.
  - Runs on the controller; nothing is written.
author:
  - netlb.ipvs developers (@netlb)
options:
  _input:
    description: The variables, e.g. every C(kube_proxy_*) variable of the host.
    type: dict
    required: true
  warn:
    description: Show the warnings (they are also returned).
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Render kube-proxy's configuration from this host's kube_proxy_* variables
  ansible.builtin.set_fact:
    kube_proxy_rendered: >-
      {{ dict(query('ansible.builtin.varnames', '^kube_proxy_')
              | zip(query('ansible.builtin.vars', *query('ansible.builtin.varnames', '^kube_proxy_'))))
         | netlb.ipvs.kube_proxy_config }}

- name: Write it
  ansible.builtin.copy:
    content: "{{ kube_proxy_rendered.text }}"
    dest: /var/lib/kube-proxy/kube-proxy-config.yaml
    mode: "0644"
'''

RETURN = r'''
_value:
  description: The rendered configuration.
  type: dict
  contains:
    config:
      description: The KubeProxyConfiguration as a dict.
      type: dict
    text:
      description: The same as YAML text.
      type: str
    warnings:
      description: The warnings (IPVS-mode deprecation, unknown scheduler).
      type: list
      elements: str
'''

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native
from ansible.utils.display import Display

from ansible_collections.netlb.ipvs.plugins.module_utils._kube_proxy.config import ConfigError, render, to_yaml

display = Display()


def kube_proxy_config(variables, warn=True):
    """The rendered configuration: {config, text, warnings}."""
    if not isinstance(variables, dict):
        raise AnsibleFilterError('kube_proxy_config: expects a dict of kube_proxy_* variables, got %s'
                                 % type(variables).__name__)
    try:
        rendered = render(variables)
    except ConfigError as err:
        raise AnsibleFilterError('kube-proxy configuration refused (%d problem%s): %s' % (
            len(err.problems), '' if len(err.problems) == 1 else 's', '; '.join(err.problems)))
    except Exception as err:  # a bug must still say where it happened, not a bare traceback
        raise AnsibleFilterError('kube_proxy_config: %s' % to_native(err))
    if warn:
        # The main process drops repeats of the same text: one warning per run, not per host.
        for warning in rendered.warnings:
            display.warning(warning)
    return {'config': rendered.config, 'text': to_yaml(rendered.config), 'warnings': list(rendered.warnings)}


class FilterModule:
    """kube-proxy configuration filters."""

    def filters(self):
        return {'kube_proxy_config': kube_proxy_config}
