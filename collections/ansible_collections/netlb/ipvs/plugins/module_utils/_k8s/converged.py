# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A timer run's short way on a node that is still converged.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Most timer runs find the cluster answering what it answered last time and the node
holding what the last run left. Translating the cluster again, rendering the packet rules
again and planning the table against it (half of a converged run at 5,000 Services)
would only prove that again. So a run that found nothing to change leaves a Mark: the
inputs it saw (the cluster's objects and the options: pipeline.fingerprint; the node's
addresses and zone; the schedulers the kernel offers) and digests of the in-scope IPVS
table, the packet rules and the state file. The next run reads the cluster and the node as
always, the cluster as names and resourceVersions alone (an object's resourceVersion
changes with every write to it, so equal versions are equal objects; a small part of the
bytes of the whole list, whose endpoints are most of it); when its inputs are the Mark's
and the node still holds exactly what the Mark holds, it is done. The rules are not even listed again when the ruleset's generation
(node/rules_generation.py: raised by every change to any nft table) is the Mark's: no
rule changed since. Anything else (a new resourceVersion, an address gone from the dummy
interface, a real server deleted by hand, a stray virtual service in scope, a rule
deleted, a state file another run changed) takes the whole sync, which then marks again
once it finds nothing to change.

Why this is safe (the Mark is written only by a whole sync that changed nothing, and
compares everything, never a sample): docs/design.md, "The timer run's short way".
A Mark that cannot be read is no Mark.

    key = inputs_key(fingerprint, context, schedulers, code_digest())
    mark = MarkStore(path).load()                       # None when absent or unreadable
    rules_text = None if mark.rules_unchanged(generation) else <the table, listed>
    if mark.holds(key, table, rules_text, state_bytes): ...    # the node is converged
    MarkStore(path).save(Mark.of(key, table, rules_text, state_bytes, warnings, generation, versions))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from ansible_collections.netlb.ipvs.plugins.module_utils._files import FileError, ensure_absent, read_text, write_atomic
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import SERVICE_SETTING_NAMES
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import rules_generation

FORMAT_VERSION = 3


def path_beside(state_path):
    """Where the Mark of the state at state_path is kept: beside it."""
    directory, name = os.path.split(state_path)
    stem = name[:-len('.json')] if name.endswith('.json') else name
    return os.path.join(directory, stem + '.converged.json')


def digest(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode('utf-8')).hexdigest()


def code_digest(root=None):
    """A digest of this collection's module_utils sources as installed (root: their
    directory): an upgrade that translates the same cluster differently makes the next
    run whole. None when they are not plain files (an Ansible module's zip)."""
    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(root):
        return None
    found = hashlib.sha256()
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        for name in sorted(files):
            if name.endswith('.py'):
                path = os.path.join(directory, name)
                found.update(os.path.relpath(path, root).encode('utf-8') + b'\0')
                with open(path, 'rb') as handle:
                    found.update(handle.read())
    return found.hexdigest()


def inputs_key(fingerprint, context, schedulers, code=None):
    """What a sync's result depends on besides the node's own table, rules and state: the
    cluster's objects and the options (fingerprint), the node's name, zone and addresses
    (the dummy interface's included: an address removed by hand changes the key), the
    schedulers the kernel offers (the fallback) and the code (code_digest())."""
    return digest(json.dumps([FORMAT_VERSION, code, fingerprint, context.name, context.zone,
                              sorted(context.addresses), sorted(context.primary),
                              sorted(schedulers) if schedulers is not None else None]))


def table_digest(table):
    """A digest of an in-scope IPVS table (ServiceKey -> VirtualService): every key, every
    setting and every real server with its settings, in key order (connection counters
    are not part of it). Two reads of the same kernel table give the same digest."""
    names = SERVICE_SETTING_NAMES
    rows = [(key, tuple(getattr(table[key], name) for name in names), table[key].real_servers)
            for key in sorted(table)]
    return digest(json.dumps(rows, separators=(',', ':')))


def table_counts(table):
    """(virtual services, real servers) of a table."""
    return len(table), sum(len(service.real_servers) for service in table.values())


@dataclasses.dataclass(frozen=True)
class Mark:
    """What a run that found the node converged saw (see the module doc string).

    key: inputs_key; table: table_digest() of the in-scope IPVS table, counts: its
    (virtual services, real servers); rules, state: digests of our nft table as read and
    of the state file's bytes; warnings: the translation's, said again by every short run;
    generation: the ruleset's [boot id, generation] read before the rules were listed
    (None: unknown); versions: the cluster's names and resourceVersions alone give the
    key's fingerprint (no legacy Endpoints were read), so a run may list just those."""

    key: str
    table: str
    counts: tuple
    rules: str
    state: str
    warnings: tuple = ()
    generation: tuple = None
    versions: bool = False

    @classmethod
    def of(cls, key, table, rules_text, state_bytes, warnings=(), generation=None, versions=False):
        """The Mark of a converged node; table: the in-scope IPVS table (ServiceKey -> VirtualService)."""
        return cls(key=key, table=table_digest(table), counts=table_counts(table), rules=digest(rules_text),
                   state=digest(state_bytes), warnings=tuple(warnings),
                   generation=tuple(generation) if generation else None, versions=bool(versions))

    def rules_unchanged(self, generation):
        """True when generation (read now) is the one read before the Mark's rules were
        listed: no rule of any table changed since, so they need not be listed again."""
        return rules_generation.unchanged(generation, self.generation)

    def holds(self, key, table, rules_text, state_bytes):
        """True when key is this Mark's and the node holds exactly what it holds: the
        in-scope table (every key, setting and real server), the rules (rules_text None:
        known unchanged, see rules_unchanged) and the state."""
        if key != self.key or len(table) != self.counts[0]:
            return False
        if digest(state_bytes) != self.state or (rules_text is not None and digest(rules_text) != self.rules):
            return False
        return table_digest(table) == self.table


def dumps(mark):
    return json.dumps({'version': FORMAT_VERSION, 'key': mark.key, 'table': mark.table, 'counts': list(mark.counts),
                       'rules': mark.rules, 'state': mark.state, 'warnings': list(mark.warnings),
                       'generation': list(mark.generation) if mark.generation else None,
                       'versions': mark.versions}, separators=(',', ':'))


def loads(text):
    """The Mark in text, or None when it is not one this release wrote (any doubt: none)."""
    try:
        document = json.loads(text)
        if document.get('version') != FORMAT_VERSION:
            return None
        fields = dict((name, document[name]) for name in ('key', 'table', 'rules', 'state'))
        counts = document['counts']
        if not all(isinstance(value, str) for value in fields.values()) or not (
                isinstance(counts, list) and len(counts) == 2 and all(isinstance(n, int) and not isinstance(n, bool) for n in counts)):
            return None
        return Mark(counts=tuple(counts), warnings=tuple(document.get('warnings') or ()),
                    generation=tuple(document['generation']) if document.get('generation') else None,
                    versions=document.get('versions') is True, **fields)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class MarkStore(object):
    """The Mark in one file (written atomically, 0600; removed when a run is not converged)."""

    def __init__(self, path):
        self.path = path

    def load(self):
        try:
            text = read_text(self.path)
        except FileError:
            return None
        return loads(text) if text else None

    def save(self, mark):
        write_atomic(self.path, dumps(mark), mode=0o600, durable=False)

    def clear(self):
        if os.path.lexists(self.path):
            ensure_absent(self.path)
