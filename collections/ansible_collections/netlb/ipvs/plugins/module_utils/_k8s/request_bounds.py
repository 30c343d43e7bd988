# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The bounds of one request to the Kubernetes API, the same for every way this collection
makes one (the kubernetes client, http.client, the watch): request_timeout over the whole
request and MAX_ANSWER_BYTES over its answer, and the checks of the parameters that set them.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

No client and no connection here: connection.py opens those. AnswerError is what a
caller turns into its SourceError.
"""

from __future__ import annotations

import threading
import time


# The bounds of one request. request_timeout is the whole request's (connect, send, the
# answer to its last byte), not each socket operation's: a server that trickles bytes
# cannot keep a run. An answer is a page of page_size objects (or a whole list from an
# apiserver that ignores limit): more bytes than this are refused, not held in memory.
MAX_ANSWER_BYTES = 256 << 20
MAX_PAGE_SIZE = 10000
MAX_REQUEST_TIMEOUT = 3600
_READ_CHUNK = 1 << 20


def request_problems(params, prefix=''):
    """The problems of request_timeout (seconds, > 0) and page_size (objects, 1 to
    MAX_PAGE_SIZE) in params (absent or None: not checked), each naming its field
    (prefix: where the params sit, e.g. 'kubernetes.')."""
    problems = []
    timeout = params.get('request_timeout')
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            problems.append('%srequest_timeout: %r is not a number of seconds' % (prefix, timeout))
        elif not 0 < timeout <= MAX_REQUEST_TIMEOUT:
            problems.append('%srequest_timeout: %s is out of range (more than 0, at most %d seconds)'
                            % (prefix, timeout, MAX_REQUEST_TIMEOUT))
    size = params.get('page_size')
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int):
            problems.append('%spage_size: %r is not a whole number of objects' % (prefix, size))
        elif not 1 <= size <= MAX_PAGE_SIZE:
            problems.append('%spage_size: %d is out of range 1-%d' % (prefix, size, MAX_PAGE_SIZE))
    return problems


class AnswerError(Exception):
    """A request past its deadline (kind 'timeout') or an answer over the byte cap
    (kind 'too-big')."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def deadline_error(timeout):
    return AnswerError('timeout', 'no answer within %s s (request_timeout)' % timeout)


def _size(count):
    return '%d MiB' % (count >> 20) if count % (1 << 20) == 0 else '%d bytes' % count


def read_answer(response, deadline, timeout, limit=None):
    """The body of an http.client or urllib3 response, at most limit bytes (None:
    MAX_ANSWER_BYTES), read by the monotonic deadline (checked between pieces; the
    transport bounds each piece). AnswerError otherwise."""
    limit = MAX_ANSWER_BYTES if limit is None else limit
    length = response.headers.get('Content-Length') if response.headers is not None else None
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise AnswerError('too-big', 'the answer has %s bytes, more than the %s allowed'
                          % (length.strip(), _size(limit)))
    pieces, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise deadline_error(timeout)
        piece = response.read(min(_READ_CHUNK, limit + 1 - size))
        if not piece:
            return b''.join(pieces)
        size += len(piece)
        if size > limit:
            raise AnswerError('too-big', 'the answer is longer than the %s allowed' % _size(limit))
        pieces.append(piece)


def call_within(timeout, function):
    """function()'s value or exception, or AnswerError('timeout') when it has not returned
    within timeout seconds. For the kubernetes client's requests, whose sockets are out of
    reach: the call runs in a daemon thread, left to end on its own (its connection is not
    reused, and its socket timeout ends it) when the deadline passes first."""
    outcome = {}

    def run():
        try:
            outcome['value'] = function()
        except BaseException as err:  # pylint: disable=broad-except
            outcome['error'] = err

    thread = threading.Thread(target=run, name='netlb-k8s-request')
    thread.daemon = True
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise deadline_error(timeout)
    if 'error' in outcome:
        raise outcome['error']
    return outcome['value']
