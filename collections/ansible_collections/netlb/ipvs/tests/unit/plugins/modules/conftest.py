# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Modules run as on a target: once any test has imported controller code (the filter
plugins' Display), ansible-core marks the process as the controller and a module's
warn() goes to the controller's display instead of the result. Each test starts with
no warnings: ansible-core keeps them in a process-wide list that no module run clears."""

from __future__ import annotations

import pytest
from ansible.module_utils.common import warnings

try:
    from ansible.module_utils import _internal
except ImportError:  # ansible-core < 2.19 has no such switch
    _internal = None


@pytest.fixture(autouse=True)
def module_side(monkeypatch):
    if _internal is not None and hasattr(_internal, 'is_controller'):
        monkeypatch.setattr(_internal, 'is_controller', False)
    monkeypatch.setattr(warnings, '_global_warnings', type(warnings._global_warnings)())
