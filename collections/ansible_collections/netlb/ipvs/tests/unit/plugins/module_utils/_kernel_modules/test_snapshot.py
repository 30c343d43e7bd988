# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.snapshot import (
    LoadedModule,
    parse_aliases,
    parse_module_paths,
    parse_proc_modules,
)


@pytest.mark.parametrize('line, expect', [
    pytest.param('ip_vs_rr 12288 1 - Live 0xffffffffc0a2e000', LoadedModule('ip_vs_rr', 1, (), False), id='scheduler-in-use'),
    pytest.param('ip_vs 192512 6 ip_vs_sh,ip_vs_wlc,ip_vs_rr, Live 0x0', LoadedModule('ip_vs', 6, ('ip_vs_sh', 'ip_vs_wlc', 'ip_vs_rr'), False),
                 id='holders'),
    pytest.param('nf-conntrack 1 0 - Live 0x0', LoadedModule('nf_conntrack', 0, (), False), id='dash-normalised'),
    pytest.param('crc32c_intel 24576 1 [permanent], Live 0x0', LoadedModule('crc32c_intel', 1, (), True), id='permanent'),
    pytest.param('foo 1 - - Live 0x0', LoadedModule('foo', 0, (), True), id='no-unload-support'),
])
def test_parse_proc_modules(line, expect):
    assert parse_proc_modules(line + '\n') == {expect.name: expect}


@pytest.mark.parametrize('text, expect', [
    pytest.param('kernel/net/netfilter/ipvs/ip_vs.ko\n', {'ip_vs'}, id='builtin'),
    pytest.param('kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz\n', {'ip_vs_rr'}, id='dep-xz'),
    pytest.param('kernel/a/x-y.ko.zst:\nkernel/b/z.ko.gz:\n\n', {'x_y', 'z'}, id='zst-gz-dash'),
])
def test_parse_module_paths(text, expect):
    assert parse_module_paths(text) == expect


def test_parse_aliases_skips_wildcards():
    text = 'alias nf_conntrack_ipv4 nf_conntrack\nalias pci:v00008086d* e1000\nalias net-pf-10 ipv6\n'
    assert parse_aliases(text) == {'nf_conntrack_ipv4': 'nf_conntrack', 'net_pf_10': 'ipv6'}
