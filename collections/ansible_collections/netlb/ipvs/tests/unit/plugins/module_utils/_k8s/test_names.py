# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_k8s/names: the names, label keys and URLs the API server takes, and the ones it refuses."""

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import names


@pytest.mark.parametrize('kind, good, bad', [
    pytest.param(names.NAMESPACE, ['kube-system', 'a', 'x' * 63, '0abc'],
                 ['', 'Kube-System', '-a', 'a-', 'a.b', 'x' * 64, 'a_b'], id='namespace'),
    pytest.param(names.NAME, ['netlb-ipvs', 'node-1.example.com', 'a', 'x' * 63 + '.' + 'y' * 63],
                 ['', 'Bad_Name', 'a..b', '.a', 'a/b', 'a b', 'a.' + 'x' * 252], id='name'),
    pytest.param(names.ROLE, ['system:node-proxier', 'view', 'A_b'], ['', '.', '..', 'a/b', 'a%2f'], id='role'),
    pytest.param(names.LABEL_KEY, ['netlb.io/kube-proxy', 'app', 'a.B_c-d', 'x' * 63],
                 ['', 'a/', '/a', 'bad label!', 'Bad.IO/x', 'x' * 64, '-a', 'a/b/c'], id='label-key'),
    pytest.param(names.URL, ['https://192.0.2.10:6443', 'http://localhost', 'https://[fd00::1]:6443/k8s'],
                 ['', 'not a url', '192.0.2.10:6443', 'ftp://host', 'https://'], id='url'),
])
def test_good_pass_and_bad_are_named(kind, good, bad):
    assert names.problems([('field', kind, value) for value in good]) == []
    found = names.problems([('field[%d]' % index, kind, value) for index, value in enumerate(bad)])
    assert [line.split(':')[0] for line in found] == ['field[%d]' % index for index in range(len(bad))]
    assert all(line.startswith('field[%d]: %r is not ' % (index, value)) for index, (line, value)
               in enumerate(zip(found, bad)))


def test_an_option_left_out_is_not_checked():
    assert names.problems([('server', names.URL, None)]) == []
