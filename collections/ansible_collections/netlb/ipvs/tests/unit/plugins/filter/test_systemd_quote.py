# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The systemd_quote filter: each value, read back by systemd's rules (a reader written
here from systemd.service's "Command lines" and systemd.unit's "Specifiers", not from the
filter), is the value given, one word; a newline or other control character fails naming
the variable. Shell quoting, which the kube_proxy unit used, gets %, $ and \\ wrong."""

from __future__ import annotations

import shlex

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.netlb.ipvs.plugins.filter import systemd_quote as plugin

_ESCAPES = {'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v', '\\': '\\', '"': '"',
            "'": "'", 's': ' '}


def systemd_words(line):
    """A command line as systemd reads it: %% -> % (any other % would be a specifier), then
    words split on blanks, double or single quotes, C escapes, then $$ -> $ (any other $
    would be a variable). Raises ValueError where systemd would not take the line."""
    text = ''
    index = 0
    while index < len(line):
        if line[index] == '%':
            if line[index:index + 2] != '%%':
                raise ValueError('specifier %r would be expanded' % line[index:index + 2])
            index += 1
        text += line[index]
        index += 1
    words, word, quote, started, index = [], '', None, False, 0
    while index < len(text):
        char = text[index]
        if char == '\\':
            if index + 1 == len(text) or text[index + 1] not in _ESCAPES:
                raise ValueError('bad escape in %r' % line)
            word += _ESCAPES[text[index + 1]]
            started, index = True, index + 2
            continue
        if quote:
            if char == quote:
                quote = None
            else:
                word += char
        elif char in '"\'':
            quote, started = char, True
        elif char in ' \t':
            if started:
                words.append(word)
            word, started = '', False
        else:
            word += char
            started = True
        index += 1
    if quote:
        raise ValueError('unterminated quote in %r' % line)
    if started:
        words.append(word)
    result = []
    for item in words:
        if '$' in item.replace('$$', ''):
            raise ValueError('variable in %r would be expanded' % item)
        result.append(item.replace('$$', '$'))
    return result


# value, as the filter writes it (None: only checked by reading it back)
WORDS = [
    ('--v=2', '--v=2'),
    ('--config=/var/lib/kube-proxy/kube-proxy-config.yaml', '--config=/var/lib/kube-proxy/kube-proxy-config.yaml'),
    ('--hostname-override=node1.example', '--hostname-override=node1.example'),
    ('a b', '"a b"'),
    ('', '""'),
    ('100%', '"100%%"'),
    ('%n', '"%%n"'),
    ('$HOME', '"$$HOME"'),
    ('${HOME}', '"$${HOME}"'),
    ('say "hi"', '"say \\"hi\\""'),
    ('back\\slash\\', '"back\\\\slash\\\\"'),
    ("it's", '"it\'s"'),
    (';', '";"'),
    ('a;b', '"a;b"'),
    ('-', '-'),
    ('--feature-gates=A=true,B=false', '--feature-gates=A=true,B=false'),
    ('über', '"über"'),
    ('\\n', None),
    ('"\'%$\\;', None),
]


@pytest.mark.parametrize('value, written', WORDS, ids=[repr(row[0]) for row in WORDS])
def test_systemd_reads_back_the_value(value, written):
    quoted = plugin.systemd_quote(value, 'v')
    if written is not None:
        assert quoted == written
    assert systemd_words('/usr/bin/x ' + quoted) == ['/usr/bin/x', value]


@pytest.mark.parametrize('value', ['100%', '%n', '$HOME', 'back\\slash'])
def test_shell_quoting_does_not(value):
    """What the unit used before: systemd reads something else (or refuses the line)."""
    try:
        read = systemd_words('/usr/bin/x ' + shlex.quote(value))
    except ValueError:
        return
    assert read != ['/usr/bin/x', value]


@pytest.mark.parametrize('value, written', [
    ('/usr/local/bin/kube-proxy', '/usr/local/bin/kube-proxy'),
    ('-/usr/bin/kube-proxy', '"-/usr/bin/kube-proxy"'),
    ('@kube-proxy', '"@kube-proxy"'),
    ('/opt/my bin/kube-proxy', '"/opt/my bin/kube-proxy"'),
])
def test_the_executable_is_never_read_as_a_prefix(value, written):
    assert plugin.systemd_quote(value, 'kube_proxy_binary', first=True) == written
    # As a later word a leading '-' is a plain character.
    assert plugin.systemd_quote('-x', 'v') == '-x'


@pytest.mark.parametrize('value, written', [
    ('/var/lib/kube-proxy', '/var/lib/kube-proxy'),
    ('/srv/100% kube', '/srv/100%% kube'),
    ('/srv/$x "y"', '/srv/$x "y"'),
])
def test_a_setting_value_only_doubles_percent(value, written):
    assert plugin.systemd_quote(value, 'kube_proxy_config_dir', command=False) == written


@pytest.mark.parametrize('value, what', [
    ('--v=2\nExecStartPre=/bin/sh -c id', 'newline'),
    ('a\rb', 'newline'),
    ('a\tb', 'control character'),
    ('a\x00b', 'control character'),
    ('a\x7fb', 'control character'),
])
@pytest.mark.parametrize('command', [True, False])
def test_control_characters_fail_naming_the_variable(value, what, command):
    with pytest.raises(AnsibleFilterError) as caught:
        plugin.systemd_quote(value, 'kube_proxy_extra_args[3]', command=command)
    assert str(caught.value) == ('kube_proxy_extra_args[3]: %r holds a %s, which a systemd unit cannot carry (it '
                                 'would end the setting)' % (value, what))


def test_numbers_are_text_and_lists_refused():
    assert plugin.systemd_quote(10249, 'v') == '10249'
    with pytest.raises(AnsibleFilterError, match=r'^v: \[1\] is not a text systemd can take$'):
        plugin.systemd_quote([1], 'v')


def test_the_filter_is_registered():
    assert plugin.FilterModule().filters() == {'systemd_quote': plugin.systemd_quote}
