# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The packet rules' table as text: a set's elements written once in both forms
(Elements), a table's lines joined as render() writes them or as normalise() would
put them, normalise() itself (one form for our text and `nft list table`'s), and
address texts made canonical and ordered by address the cheap way.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Shared by the render (packet_rules.py), the transition (packet_rules_transition.py) and
the code that reads the table back (packet_rules_nft.py). Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import socket

_AF = {4: socket.AF_INET, 6: socket.AF_INET6}


class Elements(tuple):
    """A set's elements among packet_rules' rendered lines, with its two written forms made once
    (a reused template's sets are written once): text() as render() writes them,
    normalised() as normalise() does (one per line, sorted as text). ordered: the
    elements sorted as text, when the maker has them."""

    def __new__(cls, elements=(), ordered=None):
        return super(Elements, cls).__new__(cls, elements)

    def __init__(self, elements=(), ordered=None):  # pylint: disable=unused-argument
        super(Elements, self).__init__()
        self._ordered = ordered
        self._text = self._normalised = None

    def ordered(self):
        if self._ordered is None:
            self._ordered = sorted(self)
        return self._ordered

    def text(self):
        if self._text is None:
            self._text = '\t\telements = { %s }' % ',\n\t\t\t     '.join(self)
        return self._text

    def normalised(self):
        if self._normalised is None:
            self._normalised = '\t\telements = {\n\t\t\t%s,\n\t\t}' % ',\n\t\t\t'.join(self.ordered())
        return self._normalised


def lines_text(lines):
    return '\n'.join(line if not isinstance(line, Elements) else line.text() for line in lines) + '\n'


def lines_normalised(lines):
    """normalise() of lines_text(lines), written directly: _render()'s lines are indented by
    nesting with single spaces already, so only the elements change (one per line,
    sorted); a test holds the two equal."""
    return '\n'.join(line if not isinstance(line, Elements) else line.normalised() for line in lines) + '\n'


def normalise(text):
    """One form for our text and `nft list table` output: no blank lines, indentation
    by nesting, each set's elements sorted one per line (nft prints them in its own
    order and wraps them at its own width)."""
    out, depth, elements = [], 0, None
    for raw in text.splitlines():
        line = ' '.join(raw.split())
        if not line:
            continue
        if elements is not None:
            elements.append(line)
            if line.endswith('}'):
                out.extend(_elements(elements, depth))
                elements = None
            continue
        if line.startswith('elements = {'):
            if line.endswith('}'):
                out.extend(_elements([line], depth))
            else:
                elements = [line]
            continue
        if line.startswith('}'):
            depth -= 1
        out.append('\t' * depth + line)
        if line.endswith('{'):
            depth += 1
    return '\n'.join(out) + '\n' if out else ''


def _elements(lines, depth):
    body = ' '.join(lines)[len('elements = {'):].rstrip('}')
    items = sorted(item.strip() for item in body.split(',') if item.strip())
    return ['\t' * depth + 'elements = {'] + ['\t' * (depth + 1) + item + ',' for item in items] + ['\t' * depth + '}']


def by_family(texts):
    """{4: [ip_address], 6: [...]} of address texts, each once, sorted."""
    result = dict((family, set()) for family in (4, 6))
    for text in texts:
        address = ipaddress.ip_address(text)
        result[address.version].add(address)
    return dict((family, sorted(addresses)) for family, addresses in result.items())


def fast_address(text):
    """(family, packed) of an address text already in ipaddress's canonical form, else
    None (then ipaddress decides: the same text, error or canonical form as before; the
    round trip through the C library is a fraction of ipaddress's cost)."""
    if not isinstance(text, str):
        return None
    family = 6 if ':' in text else 4
    try:
        packed = socket.inet_pton(_AF[family], text)
    except (OSError, ValueError):
        return None
    if socket.inet_ntop(_AF[family], packed) != text or (family == 6 and '.' in text):
        return None
    return family, packed


def canonical_text(text):
    """str(ipaddress.ip_address(text)), cheaply when text is canonical already."""
    return text if fast_address(text) is not None else str(ipaddress.ip_address(text))


def texts_by_family(texts):
    """{4: [text], 6: [...]} of address texts, each once, in address order, as
    by_family's addresses printed (ValueError for one that is not an address)."""
    result = {4: {}, 6: {}}
    inet_pton, inet_ntop = socket.inet_pton, socket.inet_ntop
    try:
        for text in texts:  # fast_address() inline: the hot loop (every endpoint on the node)
            family = 6 if ':' in text else 4
            packed = inet_pton(_AF[family], text)
            if inet_ntop(_AF[family], packed) != text or (family == 6 and '.' in text):
                raise ValueError(text)
            result[family][packed] = text
    except (OSError, ValueError, TypeError):
        return dict((family, [str(address) for address in addresses])
                    for family, addresses in by_family(texts).items())
    return dict((family, [by_packed[packed] for packed in sorted(by_packed)]) for family, by_packed in result.items())
