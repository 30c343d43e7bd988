# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Kubernetes API connection options every module that talks to the API takes
(their argument spec is module_utils/_k8s/connection.py's AUTH_ARG_SPEC)."""

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  kubeconfig:
    description:
      - The path of a kubeconfig file, or its content as a dict. Also C(K8S_AUTH_KUBECONFIG).
      - Without any connection option, the in-cluster configuration is used in a pod, else C($KUBECONFIG) or
        C(~/.kube/config).
      - Not logged. A dict's credentials (C(token), C(password), C(client-key-data), an auth provider's tokens and
        secrets, an exec plugin's C(env) values) are masked wherever they would appear in the result; its other
        values (server, names) are not.
    type: raw
  context:
    description: The kubeconfig context to use. Also C(K8S_AUTH_CONTEXT).
    type: str
  host:
    description: The API server's URL, e.g. C(https://192.0.2.10:6443). Also C(K8S_AUTH_HOST).
    type: str
  api_key:
    description: A bearer token for O(host). Also C(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description:
      - Verify the API server's certificate. Also C(K8S_AUTH_VALIDATE_CERTS) or C(K8S_AUTH_VERIFY_SSL).
      - Overrides a kubeconfig's C(insecure-skip-tls-verify). V(false) is warned about, and so is an C(http://)
        O(host) with O(api_key).
    type: bool
    default: true
    aliases: [verify_ssl]
  ca_cert:
    description: The CA certificate file of the API server. Also C(K8S_AUTH_CA_CERT) or C(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description: A client certificate file. Also C(K8S_AUTH_CLIENT_CERT) or C(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description: The client certificate's key file. Also C(K8S_AUTH_CLIENT_KEY) or C(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
notes:
  - Connection options follow kubernetes.core's names and C(K8S_AUTH_*) environment variables.
'''
