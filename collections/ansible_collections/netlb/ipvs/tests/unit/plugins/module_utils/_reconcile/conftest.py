# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node of the run and command tests (fakes.Node): nothing of this machine's /etc,
/var/lib, /run or /proc is read or written."""

from __future__ import annotations

import os

import pytest

from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._reconcile.fakes import Node


@pytest.fixture
def node(tmp_path, monkeypatch):
    for name in list(os.environ):  # no connection of the machine running the tests
        if name.startswith('K8S_AUTH_') or name in ('KUBECONFIG', 'KUBERNETES_SERVICE_HOST'):
            monkeypatch.delenv(name)
    return Node(tmp_path, monkeypatch)
