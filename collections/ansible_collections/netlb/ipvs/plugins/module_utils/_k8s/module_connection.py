# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Ansible side of an API connection: the connection options as an argument spec
(K8S_AUTH_* variables as fallbacks) and the one opening of the modules that need the
`kubernetes` client.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    module = AnsibleModule(argument_spec=dict(AUTH_ARG_SPEC, ...), supports_check_mode=True)
    options = module_connection(module)     # fail_json without the client or on a wrong option
    redact_kubeconfig(module)               # what a module that does not call module_connection calls

connection.py holds the connection itself and needs no Ansible (the node's entry point
netlb-ipvs uses it too); only this file imports ansible.module_utils.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import connection, request_bounds
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError

# The module merges this into its argument spec (fallbacks: the K8S_AUTH_* variables).
AUTH_ARG_SPEC = dict(
    (name, dict(spec, fallback=(env_fallback, list(variables))))
    for name, spec, variables in connection.AUTH_OPTIONS
)


# Kubeconfig fields whose values are credentials, at any depth (users[].user, an
# auth-provider's config); an exec plugin's env values count too.
SECRET_FIELDS = frozenset(('token', 'password', 'client-key-data', 'access-token', 'refresh-token', 'id-token',
                           'client-secret', 'secret'))


def _strings(value):
    """Every string in a parameter's value, as Ansible collects no_log values."""
    if isinstance(value, str):
        return {value} if value else set()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return set().union(*(_strings(item) for item in value)) if value else set()
    return set()


def kubeconfig_secrets(value):
    """The credential strings of a kubeconfig dict (none in a path)."""
    found = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in SECRET_FIELDS and isinstance(item, str) and item:
                found.add(item)
            elif key == 'env' and isinstance(item, list):
                found.update(entry['value'] for entry in item
                             if isinstance(entry, dict) and isinstance(entry.get('value'), str) and entry['value'])
            else:
                found.update(kubeconfig_secrets(item))
    elif isinstance(value, list):
        for item in value:
            found.update(kubeconfig_secrets(item))
    return found


def redact_kubeconfig(module):
    """Hide a kubeconfig's credentials in what the module returns and logs, not its every
    string. `kubeconfig` is no_log, so its value is never logged as given; Ansible then
    also masks each of its strings wherever it occurs in the result - 'v1', the cluster's
    name ('kubernetes' in 'default/kubernetes'), the server, a file's path. Keep only the
    credentials (and what another no_log option gives) among the masked values."""
    value = module.params.get('kubeconfig')
    if not value:
        return
    kept = set()
    for name, spec in module.argument_spec.items():
        if spec.get('no_log') and name != 'kubeconfig':
            kept.update(_strings(module.params.get(name)))
    secrets = kubeconfig_secrets(value)
    module.no_log_values.difference_update(_strings(value) - secrets - kept)
    module.no_log_values.update(secrets)


def module_connection(module):
    """The connection options of an AnsibleModule whose argument spec has AUTH_ARG_SPEC,
    for a module that needs the kubernetes client: fails the module on a request_timeout
    out of range, naming what to install when the client is missing, and with the
    one-line message of a wrong option (a K8S_AUTH_* variable that is no boolean); the
    connection warnings go to module.warn.
    The one place a module's opening fails, before the module's own work begins."""
    redact_kubeconfig(module)
    problems = request_bounds.request_problems(module.params)
    if problems:
        module.fail_json(msg='invalid parameters: %s' % '; '.join(problems), problems=problems)
    if not connection.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib(connection.KUBERNETES_REQUIREMENT),
                         exception=str(connection.KUBERNETES_IMPORT_ERROR))
    try:
        options = connection.connection_options_from_params(module.params)
    except SourceError as err:
        module.fail_json(msg=str(err))
    for warning in connection.connection_warnings(options):
        module.warn(warning)
    return options
