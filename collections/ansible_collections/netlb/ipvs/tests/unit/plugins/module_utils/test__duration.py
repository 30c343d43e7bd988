# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._duration import parse_duration


# Columns: text, nanoseconds (None: refused), as Go's time.ParseDuration.
DURATIONS = [('0', 0), ('0s', 0), ('30s', 30 * 10 ** 9), ('1h0m0s', 3600 * 10 ** 9), ('1.5m', 90 * 10 ** 9),
             ('-2s', -2 * 10 ** 9), ('+3ms', 3 * 10 ** 6), ('300us', 300000), ('10ns', 10), ('.5s', 5 * 10 ** 8),
             ('', None), ('30', None), ('s', None), ('1d', None), ('1h 2m', None), ('-', None)]


@pytest.mark.parametrize('text, nanos', DURATIONS, ids=[repr(row[0]) for row in DURATIONS])
def test_go_durations(text, nanos):
    if nanos is None:
        with pytest.raises(ValueError):
            parse_duration(text)
    else:
        assert parse_duration(text) == nanos
