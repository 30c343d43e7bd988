# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one diff tracker: what a run changes, rendered as Ansible's {before, after}.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Two kinds of entries:
  add(name, before, after)         a value (list, dict, str, number); all values of a
                                   run render together as one {before: {...}, after: {...}}
  add_text(header, before, after)  a whole file's text (None = absent), rendered as its
                                   own text diff with headers, as Ansible's file modules do
diff() returns one dict when there is one entry and a list otherwise (Ansible's
callbacks render both). Values are recorded in check mode exactly as in a real run.
"""

from __future__ import annotations


def _plain(value):
    """A JSON-friendly copy: sets become sorted lists, tuples lists."""
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(item) for item in value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return dict((key, _plain(item)) for key, item in value.items())
    return value


class DiffTracker:
    """Collects before/after pairs during a run."""

    def __init__(self):
        self._values = {}  # name -> [before, after]; dicts keep insertion order
        self._texts = []   # [header, before, after]

    def add(self, name, before, after):
        """Record a value. Recording a name again keeps the first before and the new after."""
        if name in self._values:
            self._values[name][1] = _plain(after)
        else:
            self._values[name] = [_plain(before), _plain(after)]

    def add_text(self, header, before, after):
        """Record a file's text before and after; None means the file is absent."""
        self._texts.append([header, before, after])

    @property
    def changed(self):
        return bool(self.changed_names())

    def changed_names(self):
        """Names (and file headers) whose before and after differ, in recording order."""
        names = [name for name, (before, after) in self._values.items() if before != after]
        names.extend(header for header, before, after in self._texts if before != after)
        return names

    def before(self):
        return dict((name, pair[0]) for name, pair in self._values.items())

    def after(self):
        return dict((name, pair[1]) for name, pair in self._values.items())

    def diff(self):
        """Ansible's diff: {'before': ..., 'after': ...}, or a list of them."""
        entries = []
        if self._values or not self._texts:
            entries.append({'before': self.before(), 'after': self.after()})
        for header, before, after in self._texts:
            entries.append({
                'before': before or '',
                'after': after or '',
                'before_header': header if before is not None else '%s (absent)' % header,
                'after_header': header if after is not None else '%s (absent)' % header,
            })
        return entries[0] if len(entries) == 1 else entries
