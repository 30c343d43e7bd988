# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""connection.py's care for credentials: a client key from a kubeconfig's
client-key-data goes to a file only inside a directory of its own (0700) that is gone
when the connection is, through the module's own HTTPS and through the kubernetes client
(whose files would otherwise stay in $TMPDIR until the process exits, for ever after a
kill); certificates not checked and tokens sent over http:// are warned about."""

from __future__ import annotations

import os
import ssl
import stat
import tempfile

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import connection
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.sources import api, direct
from kube_api import objects


@pytest.fixture
def tmpdir_of_the_process(tmp_path, monkeypatch):
    """$TMPDIR of the code under test, empty; the private directories seen while a key is loaded."""
    where = tmp_path / 'tmp'
    where.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(where))
    seen = []
    load = ssl.SSLContext.load_cert_chain

    def recording(context, certfile, keyfile=None, password=None):
        directory = os.path.dirname(os.path.abspath(certfile))
        if directory.startswith(str(where)):
            seen.append((os.path.relpath(directory, str(where)), stat.S_IMODE(os.stat(directory).st_mode),
                         stat.S_IMODE(os.stat(certfile).st_mode)))
        return load(context, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, 'load_cert_chain', recording)
    return where, seen


def test_direct_key_in_a_private_directory_removed_at_once(kube_api, tmpdir_of_the_process):
    where, seen = tmpdir_of_the_process
    found = direct.Target(kube_api.url, cert_data=kube_api.pki.read('client_cert'),
                          key_data=kube_api.pki.read('client_key'), ca_data=kube_api.pki.read('ca_cert').decode())
    direct.ssl_context(found)
    assert len(seen) == 1
    directory, directory_mode, file_mode = seen[0]
    assert directory.startswith('netlb-k8s-') and os.sep not in directory  # not $TMPDIR itself
    assert (directory_mode, file_mode) == (0o700, 0o600)
    assert os.listdir(str(where)) == []


@pytest.mark.parametrize('use_client', [None, True], ids=['direct', 'client'])
def test_no_key_file_outlives_the_read(kube_api, tmp_path, tmpdir_of_the_process, use_client):
    where, seen = tmpdir_of_the_process
    kube_api.add(*objects.cluster(2))
    path = kube_api.write_kubeconfig(str(tmp_path / 'kc'), token='', client_cert=True)
    options = connection.connection_options_from_params({'kubeconfig': path}, environ={})
    for _run in (1, 2):  # the client's file cache must not hand the second run a removed file
        snapshot = api.read_cluster(options, environ={}, need_node=False, use_client=use_client)
        assert len(snapshot.services) == 2
        assert os.listdir(str(where)) == []
    assert seen and all(mode == 0o700 for _directory, mode, _file_mode in seen)


def test_api_calls_remove_their_directory(kube_api, tmp_path, tmpdir_of_the_process):
    where, _seen = tmpdir_of_the_process
    path = kube_api.write_kubeconfig(str(tmp_path / 'kc'), token='', client_cert=True)
    calls = connection.ApiCalls(connection.connection_options_from_params({'kubeconfig': path}, environ={}), 5)
    made = os.listdir(str(where))
    assert len(made) == 1 and stat.S_IMODE(os.stat(str(where / made[0])).st_mode) == 0o700
    calls.close()
    assert os.listdir(str(where)) == []


def test_a_failed_opening_removes_its_directory(tmp_path, tmpdir_of_the_process):
    where, _seen = tmpdir_of_the_process
    options = connection.connection_options_from_params({'kubeconfig': str(tmp_path / 'missing')}, environ={})
    with pytest.raises(Exception):
        connection.ApiCalls(options, 5)
    assert os.listdir(str(where)) == []


@pytest.mark.parametrize('options, expected', [
    pytest.param({'host': 'https://192.0.2.10:6443', 'api_key': 't'}, [], id='https-token'),
    pytest.param({'host': 'https://192.0.2.10:6443', 'api_key': 't', 'validate_certs': False},
                 ["validate_certs is false: the API server's certificate is not checked, so anyone on the way can "
                  'pose as it and read the credentials sent'], id='tls-off'),
    pytest.param({'host': 'http://192.0.2.10:8080', 'api_key': 't'},
                 ['host http://192.0.2.10:8080 is http://: api_key goes to it unencrypted; use https://'],
                 id='http-token'),
    pytest.param({'host': 'HTTP://192.0.2.10:8080', 'api_key': 't', 'validate_certs': 'no'},
                 ["validate_certs is false: the API server's certificate is not checked, so anyone on the way can "
                  'pose as it and read the credentials sent',
                  'host HTTP://192.0.2.10:8080 is http://: api_key goes to it unencrypted; use https://'],
                 id='both'),
    pytest.param({'host': 'http://127.0.0.1:8001'}, [], id='http-without-token'),
])
def test_insecure_connections_are_warned_about(options, expected):
    parsed = connection.connection_options_from_params(options, environ={})
    assert connection.connection_warnings(parsed, environ={}) == expected
