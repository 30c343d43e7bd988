# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest fixtures of the stand-in API server (registered from the repository's
conftest.py, so every test can ask for them: collection unit tests and tests/vm).

kube_api: the session's KubeApiServer, emptied before the test (objects, recorded
requests, faults). A test adds objects, points a client at kube_api.url (CA file
kube_api.pki.ca_cert, token kube_api.token) or at a kubeconfig from
kube_api.write_kubeconfig(path) (host='10.0.2.2' for a client on the lab VM).
"""

import pytest

from .server import KubeApiServer


@pytest.fixture(scope='session')
def kube_api_server(tmp_path_factory):
    server = KubeApiServer(str(tmp_path_factory.mktemp('kube-api')))
    yield server
    server.stop()


@pytest.fixture
def kube_api(kube_api_server):
    kube_api_server.reset()
    yield kube_api_server
    kube_api_server.reset()
