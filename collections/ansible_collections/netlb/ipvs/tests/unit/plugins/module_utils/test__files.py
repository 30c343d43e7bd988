# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _files
from ansible_collections.netlb.ipvs.plugins.module_utils._files import (
    FileError,
    ensure_absent,
    ensure_content,
    read_text,
    write_atomic,
)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# before None: the file does not exist.
@pytest.mark.parametrize('before, mode_before, content, check_mode, expect_changed, expect_text, expect_mode', [
    pytest.param(None, None, 'a\n', False, True, 'a\n', 0o644, id='create'),
    pytest.param(None, None, 'a\n', True, True, None, None, id='create-check'),
    pytest.param('a\n', 0o644, 'a\n', False, False, 'a\n', 0o644, id='same'),
    pytest.param('old\n', 0o644, 'a\n', False, True, 'a\n', 0o644, id='content'),
    pytest.param('old\n', 0o644, 'a\n', True, True, 'old\n', 0o644, id='content-check'),
    pytest.param('a\n', 0o600, 'a\n', False, True, 'a\n', 0o644, id='mode-only'),
    pytest.param('a\n', 0o600, 'a\n', True, True, 'a\n', 0o600, id='mode-only-check'),
])
def test_ensure_content(tmp_path, before, mode_before, content, check_mode, expect_changed, expect_text, expect_mode):
    path = str(tmp_path / 'x.conf')
    if before is not None:
        with open(path, 'w') as handle:
            handle.write(before)
        os.chmod(path, mode_before)
    change = ensure_content(path, content, 0o644, check_mode=check_mode)
    assert change.changed is expect_changed
    assert (change.before, change.after, change.mode_before) == (before, content, mode_before)
    assert read_text(path) == expect_text
    if expect_mode is not None:
        assert mode_of(path) == expect_mode
    assert os.listdir(str(tmp_path)) == (['x.conf'] if expect_text is not None else []), 'no temporary file left'


@pytest.mark.parametrize('exists, check_mode, expect_changed, expect_exists', [
    pytest.param(True, False, True, False, id='remove'),
    pytest.param(True, True, True, True, id='remove-check'),
    pytest.param(False, False, False, False, id='absent'),
])
def test_ensure_absent(tmp_path, exists, check_mode, expect_changed, expect_exists):
    path = tmp_path / 'x.conf'
    if exists:
        path.write_text('a\n')
    change = ensure_absent(str(path), check_mode=check_mode)
    assert change.changed is expect_changed
    assert change.before == ('a\n' if exists else None) and change.after is None
    assert path.exists() is expect_exists


@pytest.mark.parametrize('layout, expect_reason', [
    pytest.param('missing-dir', 'does not exist', id='missing-dir'),
    pytest.param('is-dir', 'is a directory', id='is-dir'),
    pytest.param('read-only-dir', 'not writable', id='read-only-dir'),
])
def test_ensure_content_unwritable(tmp_path, monkeypatch, layout, expect_reason):
    path = tmp_path / 'x.conf'
    if layout == 'missing-dir':
        path = tmp_path / 'nope' / 'x.conf'
    elif layout == 'is-dir':
        path.mkdir()
    else:
        # Tests may run as root, for whom chmod does not deny; ask access() instead.
        monkeypatch.setattr(_files.os, 'access', lambda p, m: False)
    with pytest.raises(FileError) as info:
        ensure_content(str(path), 'a\n', check_mode=True)
    assert expect_reason in str(info.value).lower() and str(path) in str(info.value)


def test_write_atomic_failure_leaves_no_temp(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError(30, 'Read-only file system')
    monkeypatch.setattr(_files.os, 'replace', refuse)
    with pytest.raises(FileError) as info:
        write_atomic(str(tmp_path / 'x.conf'), 'a\n')
    assert 'Read-only file system' in str(info.value)
    assert os.listdir(str(tmp_path)) == []


def test_read_text_errors(tmp_path):
    assert read_text(str(tmp_path / 'absent')) is None
    (tmp_path / 'bin').write_bytes(b'\xff\xfe')
    with pytest.raises(FileError):
        read_text(str(tmp_path / 'bin'))
    with pytest.raises(FileError):
        read_text(str(tmp_path))


@pytest.mark.parametrize('durable, syncs', [(True, 2), (False, 0)])
def test_write_atomic_syncs_only_when_durable(tmp_path, monkeypatch, durable, syncs):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, 'fsync', lambda fd: calls.append(fd) or real_fsync(fd))
    write_atomic(str(tmp_path / 'state.json'), '{}\n', durable=durable)
    assert (tmp_path / 'state.json').read_text() == '{}\n'
    assert len(calls) == syncs
