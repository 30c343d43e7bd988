# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small JSON state file kept between runs: read, checked for its version, replaced atomically.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The proxy's state (_k8s/state.py) and the drain state (_ipvs/drain_state.py) are both one
such file: each store says what its document holds (its own dumps and the reader of the
checked document); this module does the rest the same way for both. A reader never sees
half a file (write_atomic); a missing file is the empty state; anything else that is not
a document of a known version is the store's own error, naming the file.
"""

from __future__ import annotations

import json

from ansible_collections.netlb.ipvs.plugins.module_utils._files import (
    FileError,
    make_parent_directory,
    read_text,
    write_atomic,
)

MODE = 0o644


def parse(text, versions, read, what, error):
    """JSON text -> read(document), when the document is an object whose "version" is one
    of versions. Anything unexpected, in the JSON or in read() (AttributeError, KeyError,
    TypeError, ValueError), raises error('<what> is not valid: ...')."""
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError('not a JSON object')
        if document.get('version') not in versions:
            raise ValueError('unknown version %r' % document.get('version'))
        return read(document)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise error('%s is not valid: %s' % (what, exc))


class JsonStateFile(object):
    """One state file. what names it in messages ('proxy state'); error is the store's
    exception class; durable=False skips the fsyncs (a state whose loss costs little)."""

    def __init__(self, path, what, error, durable=True):
        self.path = path
        self.what = what
        self.error = error
        self.durable = durable

    def load(self, loads, empty):
        """loads(text) of the file, or empty when it does not exist. The error names the path."""
        try:
            text = read_text(self.path)
        except FileError as exc:
            raise self.error(str(exc))
        if text is None:
            return empty
        try:
            return loads(text)
        except self.error as exc:
            raise self.error('%s: %s' % (self.path, exc))

    def save(self, text):
        """Replace the file with text (mode 0644), making its directory when missing."""
        try:
            make_parent_directory(self.path)
            write_atomic(self.path, text, mode=MODE, durable=self.durable)
        except FileError as exc:
            raise self.error('cannot save %s: %s' % (self.what, exc))

    @property
    def lock_path(self):
        """The sibling lock file (the run lock's mechanism, _run_lock.py)."""
        return self.path + '.lock'
