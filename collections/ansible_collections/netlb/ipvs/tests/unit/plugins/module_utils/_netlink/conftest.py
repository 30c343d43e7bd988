# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The generic-netlink socket is tested against the netlink backend's fake kernel (an
IPVS family with its own, independent encoder)."""

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.backends.conftest import FakeKernel


@pytest.fixture
def kernel():
    return FakeKernel()
