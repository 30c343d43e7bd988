# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.request import build_request, render_persist_file
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._kernel_modules.fakes import DEFAULT_MODULES, DEFAULTS


@pytest.mark.parametrize('params, expect_modules, expect_problems', [
    pytest.param({}, DEFAULT_MODULES, [], id='defaults'),
    pytest.param({'schedulers': [], 'extra_modules': []}, ['ip_vs'], [], id='only-ip-vs'),
    pytest.param({'schedulers': ['rr', 'rr'], 'extra_modules': ['ip_vs_rr', 'nf-conntrack']}, ['ip_vs', 'ip_vs_rr', 'nf_conntrack'], [],
                 id='deduplicated-and-normalised'),
    pytest.param({'schedulers': ['rr', 'fastest']}, None, ["schedulers[1]: unknown scheduler 'fastest'"], id='unknown-scheduler'),
    pytest.param({'schedulers': ['']}, None, ['schedulers[0]: empty scheduler name'], id='empty-scheduler'),
    pytest.param({'extra_modules': ['', '  ']}, None, ['extra_modules[0]: empty module name', 'extra_modules[1]: empty module name'],
                 id='empty-modules'),
    pytest.param({'extra_modules': ['a;b', '-r', 'ok', 'x' * 56]}, None,
                 ["extra_modules[0]: 'a;b' is not a kernel module name", "extra_modules[1]: '-r' is not",
                  'extra_modules[3]: '], id='odd-characters'),
    pytest.param({'persist_file': 'relative.conf'}, None, ["persist_file: must be an absolute path, got 'relative.conf'"], id='relative'),
    pytest.param({'persist_file': '/etc/modules'}, None, ["persist_file: '/etc/modules' must end in .conf"], id='not-conf'),
    pytest.param({'persist_file': 'relative', 'persist': False}, DEFAULT_MODULES, [], id='persist-off-ignores-file'),
    pytest.param({'state': 'gone'}, None, ["state: must be 'present' or 'absent'"], id='bad-state'),
])
def test_build_request(params, expect_modules, expect_problems):
    args = dict(DEFAULTS, persist_file='/etc/modules-load.d/netlb-ipvs.conf')
    args.update(params)
    if expect_problems:
        with pytest.raises(ValidationError) as info:
            build_request(args)
        assert len(info.value.problems) == len(expect_problems)
        for problem, expected in zip(info.value.problems, expect_problems):
            assert problem.startswith(expected)
    else:
        request = build_request(args)
        assert request.modules == expect_modules
        assert request.persist_file == (args['persist_file'] if args['persist'] else None)


def test_render_persist_file():
    text = render_persist_file(['ip_vs', 'ip_vs_rr'])
    assert text.endswith('\nip_vs\nip_vs_rr\n')
    assert all(line.startswith('#') for line in text.splitlines()[:-2])
