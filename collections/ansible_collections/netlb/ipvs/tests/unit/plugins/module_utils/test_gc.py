# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_gc.paused(): the collector asleep inside, left as found after."""

from __future__ import annotations

import contextlib
import gc

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _gc


@pytest.mark.parametrize('enabled, fail', [
    pytest.param(True, False, id='restored'),
    pytest.param(True, True, id='restored-after-error'),
    pytest.param(False, False, id='left-off-if-it-was-off'),
])
def test_paused(enabled, fail):
    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(ValueError) if fail else contextlib.nullcontext():
            with _gc.paused():
                assert not gc.isenabled()
                if fail:
                    raise ValueError('boom')
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
