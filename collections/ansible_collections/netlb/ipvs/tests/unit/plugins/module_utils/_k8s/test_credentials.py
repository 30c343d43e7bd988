# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""When a node's kubeconfig is kept and when its token is renewed (current_token), and the
kubeconfig text being the same bytes for the same inputs (render_kubeconfig)."""

from __future__ import annotations

import pytest

from kube_api.tokens import make_token

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.credentials import (
    Wanted,
    current_token,
    render_kubeconfig,
    token_claims,
)

NOW = 1800000000
SERVER = 'https://192.0.2.10:6443'
CA = b'-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n'
WANTED = Wanted(service_account='netlb-ipvs', namespace='kube-system', cluster_role='system:node-proxier',
                binding='netlb-ipvs', expiration_seconds=90 * 86400, renew_before=30 * 86400, rotate=False,
                server=SERVER, user='netlb-ipvs')
UID = 'uid-1'


def kubeconfig(lifetime=90 * 86400, name='netlb-ipvs', uid=UID, server=SERVER, ca=CA, token=None):
    token = token if token is not None else make_token('kube-system', name, uid, lifetime, now=NOW)
    return render_kubeconfig(server, ca, token, 'netlb-ipvs')


@pytest.mark.parametrize('text, wanted, account_uid, kept, why', [
    pytest.param(kubeconfig(), WANTED, UID, True, None, id='fresh token kept'),
    pytest.param(kubeconfig(lifetime=30 * 86400 + 1), WANTED, UID, True, None, id='one second above renew_before'),
    pytest.param(kubeconfig(lifetime=30 * 86400), WANTED, UID, False, 'expires in 2592000 s', id='at renew_before'),
    pytest.param(kubeconfig(lifetime=-5), WANTED, UID, False, 'expires in -5 s', id='expired'),
    pytest.param(kubeconfig(), WANTED._replace(rotate=True), UID, False, 'rotate is set', id='rotate'),
    pytest.param('', WANTED, UID, False, 'no kubeconfig yet', id='none'),
    pytest.param('- [', WANTED, UID, False, 'not one this wrote', id='not yaml'),
    pytest.param(kubeconfig(server='https://old:6443'), WANTED, UID, False, 'the server changed', id='server'),
    pytest.param(kubeconfig(ca=b'other'), WANTED, UID, False, "CA changed", id='ca'),
    pytest.param(kubeconfig(name='other'), WANTED, UID, False, 'system:serviceaccount:kube-system:other',
                 id='another account'),
    pytest.param(kubeconfig(uid='uid-0'), WANTED, UID, False, 're-created', id='account re-created'),
    pytest.param(kubeconfig(token='opaque-secret-token'), WANTED, UID, False, 'not a JWT', id='not a jwt'),
])
def test_current_token(text, wanted, account_uid, kept, why):
    token, reason = current_token(text, SERVER, CA, wanted, account_uid, NOW)
    assert (token is not None, reason is None) == (kept, kept)
    if why:
        assert why in reason


def test_render_is_stable_and_carries_the_token():
    token = make_token('kube-system', 'netlb-ipvs', UID, 3600, now=NOW)
    text = render_kubeconfig(SERVER, CA, token, 'netlb-ipvs')
    assert text == render_kubeconfig(SERVER, CA, token, 'netlb-ipvs')
    assert token_claims(token)['exp'] == NOW + 3600
    assert current_token(text, SERVER, CA, WANTED._replace(renew_before=600), UID, NOW)[0] == token
