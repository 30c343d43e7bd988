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

connection.py holds the connection itself and needs no Ansible (the node's entry point
netlb-ipvs uses it too); only this file imports ansible.module_utils.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import connection
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import SourceError

# The module merges this into its argument spec (fallbacks: the K8S_AUTH_* variables).
AUTH_ARG_SPEC = dict(
    (name, dict(spec, fallback=(env_fallback, list(variables))))
    for name, spec, variables in connection.AUTH_OPTIONS
)


def module_connection(module):
    """The connection options of an AnsibleModule whose argument spec has AUTH_ARG_SPEC,
    for a module that needs the kubernetes client: fails the module naming what to
    install when the client is missing, and with the one-line message of a wrong option
    (a K8S_AUTH_* variable that is no boolean); the connection warnings go to module.warn.
    The one place a module's opening fails, before the module's own work begins."""
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
