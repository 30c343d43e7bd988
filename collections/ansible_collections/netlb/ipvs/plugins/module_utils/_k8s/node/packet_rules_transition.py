# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The table to load while services come and go (the rule "Changing the table" of
packet_rules.py): the new table with the elements of the old one that keep what goes
restricted or working until IPVS and the dummy interface have let go of it.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

transition() works on normalised texts (a table read back), transition_lines() on
render_lines()'s lines (no parsing back); a test holds the two equal. Pure: no I/O.
"""

from __future__ import annotations

import bisect

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.packet_rules_text import Elements, lines_normalised, lines_text


# Sets whose old elements transition() keeps beside the new ones: each only narrows who
# gets in (restrictions, rejects) or keeps what still exists working (masquerade, hairpin,
# ports of services still in IPVS). Not cluster_cidrs (an option: nft refuses overlapping
# intervals) and lb_allowed (kept only for restrictions that go, see transition()).
_KEPT_SETS = ('services', 'dummy', 'lb_restricted', 'masquerade', 'cluster_ip', 'hairpin')


def transition(before, after):
    """The table to load before the IPVS table changes (the rule "Changing the table"
    at the top): after's chains and sets, with the elements of before's sets that
    _KEPT_SETS names added, and before's allowed ranges of the restrictions that go.

    before: what read() returned (normalised; '' when no table); after: normalise() of
    render()'s text. A set whose type or flags differ between the two (another release's
    table) keeps only after's elements. Returns nft text as render() writes it.
    """
    old, new = _sets(before), _sets(after)
    lines, skipping = [], False
    for line in after.splitlines():
        if skipping:
            skipping = line != '\t}'
            continue
        if line.startswith('\tset ') and line.endswith(' {'):
            name = line[len('\tset '):-len(' {')]
            header, elements = new[name]
            if name in old and old[name][0] == header:
                elements = sorted(set(elements) | set(_kept(name, old, new)))
            lines.append(line)
            lines.extend('\t\t' + entry for entry in header)
            if elements:
                lines.append('\t\telements = { %s }' % ',\n\t\t\t     '.join(elements))
            lines.append('\t}')
            skipping = True
            continue
        lines.append(line)
    return '\n'.join(lines) + '\n'


def transition_lines(before, after):
    """(transition(b, a), normalise() of it) where b and a are normalise() of the texts
    of _render() lines before and after (render_lines()): the same tables, made from the
    lines instead of parsing texts back (a test holds the two equal)."""
    old, new = _line_sets(before), _line_sets(after)
    lines, skipping = [], False
    for line in after:
        if skipping:
            skipping = line != '\t}'
            continue
        if not isinstance(line, Elements) and line.startswith('\tset ') and line.endswith(' {'):
            name = line[len('\tset '):-len(' {')]
            header, elements = new[name]
            ordered = elements.ordered() if elements else []
            if name in old and old[name][0] == header and old[name][1] is not elements:
                # The same elements (a reused template) add none: kept is a part of them.
                extra = set(_kept(name, old, new)) - set(elements)
                if extra:
                    ordered = list(ordered)
                    for element in extra:
                        bisect.insort(ordered, element)
            lines.append(line)
            lines.extend('\t\t' + entry for entry in header)
            if ordered:
                lines.append(Elements(ordered, ordered=ordered))
            lines.append('\t}')
            skipping = True
            continue
        lines.append(line)
    return lines_text(lines), lines_normalised(lines)


def _line_sets(lines):
    """_sets() of the normalised text of _render() lines, but each set's elements the
    Elements itself (unsorted; () when none)."""
    sets, name = {}, None
    for line in lines:
        if name is None:
            if not isinstance(line, Elements) and line.startswith('\tset ') and line.endswith(' {'):
                name = line[len('\tset '):-len(' {')]
                sets[name] = ([], ())
        elif isinstance(line, Elements):
            sets[name] = (sets[name][0], line)
        elif line == '\t}':
            name = None
        else:
            sets[name][0].append(line.strip())
    return sets


def _kept(name, old, new):
    """The elements of old's set name that the transition keeps."""
    kind, family = name[:-1], name[-1:]
    if kind in _KEPT_SETS:
        return old[name][1]
    if kind != 'lb_allowed':
        return ()
    restricted = 'lb_restricted' + family
    if restricted not in old or restricted not in new or old[restricted][0] != new[restricted][0]:
        return ()
    going = set(old[restricted][1]) - set(new[restricted][1])
    # An allowed element is `address . protocol . port . range`: the restriction, then the range.
    return [element for element in old[name][1] if element.rsplit(' . ', 1)[0] in going]


def _sets(text):
    """{set name: (header lines (type, flags), element texts)} of a normalised table."""
    sets, name, in_elements = {}, None, False
    for line in text.splitlines():
        if name is None:
            if line.startswith('\tset ') and line.endswith(' {'):
                name = line[len('\tset '):-len(' {')]
                sets[name] = ([], [])
        elif in_elements:
            if line == '\t\t}':
                in_elements = False
            else:
                sets[name][1].append(line.strip().rstrip(','))
        elif line == '\t\telements = {':
            in_elements = True
        elif line == '\t}':
            name = None
        else:
            sets[name][0].append(line.strip())
    return sets
