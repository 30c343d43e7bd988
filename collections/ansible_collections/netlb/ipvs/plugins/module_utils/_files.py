# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Small files the collection owns (modules-load.d, sysctl.d, state files), written atomically.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

A reader never sees half a file: content goes to a temporary file in the same
directory, is flushed to disk, then renamed over the target. Check mode is the
caller's flag; with it nothing is written but the answer (changed, before) is the same.
Errors are FileError naming the path; nothing here exits the module.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import os
import stat


class FileError(Exception):
    """A file could not be read, written or removed."""

    def __init__(self, path, action, reason):
        self.path = path
        self.action = action
        self.reason = reason
        super(FileError, self).__init__('cannot %s %s: %s' % (action, path, reason))


# before/after are the text (None: file absent); changed includes a mode-only change.
FileChange = collections.namedtuple('FileChange', 'path changed before after mode_before mode_after')


def _reason(exc):
    return exc.strerror or str(exc)


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, 'r', encoding='utf-8') as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise FileError(path, 'read', _reason(exc))
    except UnicodeDecodeError as exc:
        raise FileError(path, 'read', 'not UTF-8 text (%s)' % exc)


def file_mode(path):
    """Permission bits of path, or None when it does not exist."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise FileError(path, 'stat', _reason(exc))


def check_writable(path):
    """Raise FileError unless path could be written: its directory exists and is
    writable, and path itself is not a directory. Lets check mode fail like a real run."""
    if os.path.isdir(path):
        raise FileError(path, 'write', 'it is a directory')
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        raise FileError(path, 'write', 'directory %s does not exist' % directory)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise FileError(path, 'write', 'directory %s is not writable' % directory)


def write_atomic(path, content, mode=0o644, durable=True):
    """Replace path with content (text) and mode, keeping the old owner if any.

    Readers see the old or the new file, never a part. durable=False skips the two
    fsyncs (tens of milliseconds on slow disks) for state whose loss after a power cut
    costs nothing but time."""
    directory = os.path.dirname(path) or '.'
    try:
        previous = os.stat(path)
    except OSError:
        previous = None
    tmp_path = None
    try:
        fd, tmp_path = _temporary(directory, os.path.basename(path))
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(content)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if previous is not None and os.geteuid() == 0:
                os.fchown(handle.fileno(), previous.st_uid, previous.st_gid)
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp_path, path)
        tmp_path = None
        if durable:
            _fsync_directory(directory)
    except (IOError, OSError) as exc:
        raise FileError(path, 'write', _reason(exc))
    finally:
        if tmp_path is not None:
            try:
                os.unlink(tmp_path)
            except OSError:
                pass


def _temporary(directory, name):
    """A new file beside the target, opened for writing, 0600: what tempfile.mkstemp does,
    without importing tempfile (with shutil behind it), which a timer's run pays each time."""
    for _attempt in range(100):
        tmp_path = os.path.join(directory, '.%s.%s' % (name, os.urandom(6).hex()))
        try:
            return os.open(tmp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, 'O_CLOEXEC', 0), 0o600), tmp_path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, 'no unused temporary name', directory)


def _fsync_directory(directory):
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_content(path, content, mode=0o644, check_mode=False):
    """Make path hold exactly content with mode. Returns a FileChange."""
    before = read_text(path)
    mode_before = file_mode(path) if before is not None else None
    changed = before != content or mode_before != mode
    if changed:
        check_writable(path)
        if not check_mode:
            write_atomic(path, content, mode)
    return FileChange(path, changed, before, content, mode_before, mode)


def ensure_absent(path, check_mode=False):
    """Make sure path does not exist. Returns a FileChange (after is None)."""
    before = read_text(path)
    mode_before = file_mode(path) if before is not None else None
    if before is None:
        return FileChange(path, False, None, None, None, None)
    directory = os.path.dirname(path) or '.'
    if not os.access(directory, os.W_OK | os.X_OK):
        raise FileError(path, 'remove', 'directory %s is not writable' % directory)
    if not check_mode:
        try:
            os.unlink(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise FileError(path, 'remove', _reason(exc))
    return FileChange(path, True, before, None, mode_before, None)


def make_parent_directory(path, mode=0o755):
    """Create the directory path lives in (and its parents) if missing."""
    directory = os.path.dirname(path)
    if directory:
        try:
            os.makedirs(directory, mode)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise FileError(directory, 'create', _reason(exc))


def lock_file(path):
    """An open handle holding an exclusive lock on the sibling path + '.lock' (the
    directory is made if missing); closing it releases the lock. Raises FileError."""
    make_parent_directory(path)
    try:
        handle = open(path + '.lock', 'a')
    except (IOError, OSError) as exc:
        raise FileError(path + '.lock', 'open', _reason(exc))
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


@contextlib.contextmanager
def locked(path):
    """Hold lock_file(path) for the block: serialises whole runs that read, change and
    save one state file."""
    handle = lock_file(path)
    try:
        yield
    finally:
        handle.close()
