# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._diff import DiffTracker

F = '/etc/x.conf'


@pytest.mark.parametrize('values, texts, expect_changed, expect_diff', [
    pytest.param([], [], [], {'before': {}, 'after': {}}, id='empty'),
    pytest.param([('a', 1, 1)], [], [], {'before': {'a': 1}, 'after': {'a': 1}}, id='unchanged-value'),
    pytest.param([('a', (1, 2), {2, 1, 3})], [], ['a'], {'before': {'a': [1, 2]}, 'after': {'a': [1, 2, 3]}},
                 id='tuples-and-sets-become-lists'),
    pytest.param([('a', 1, 2), ('a', 5, 3)], [], ['a'], {'before': {'a': 1}, 'after': {'a': 3}},
                 id='same-name-keeps-first-before'),
    pytest.param([], [(F, None, 'x\n')], [F],
                 {'before': '', 'after': 'x\n', 'before_header': F + ' (absent)', 'after_header': F}, id='file-created'),
    pytest.param([], [(F, 'x\n', None)], [F],
                 {'before': 'x\n', 'after': '', 'before_header': F, 'after_header': F + ' (absent)'}, id='file-removed'),
    pytest.param([('m', [], ['ip_vs'])], [(F, 'x\n', 'x\n')], ['m'],
                 [{'before': {'m': []}, 'after': {'m': ['ip_vs']}},
                  {'before': 'x\n', 'after': 'x\n', 'before_header': F, 'after_header': F}], id='values-and-file'),
])
def test_diff_tracker(values, texts, expect_changed, expect_diff):
    tracker = DiffTracker()
    for name, before, after in values:
        tracker.add(name, before, after)
    for header, before, after in texts:
        tracker.add_text(header, before, after)
    assert tracker.changed_names() == expect_changed
    assert tracker.changed is bool(expect_changed)
    assert tracker.diff() == expect_diff
