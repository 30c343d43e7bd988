# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Is a kube-proxy running on this node, and in which mode?

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Two kube-proxies in IPVS mode on one node would delete each other's virtual services
and dummy addresses, so the module asks first. Any pod can start a process named
kube-proxy, so only one that could really share our IPVS table counts: its name (comm,
or argv[0]'s base name) is kube-proxy, it runs as root (real and effective uid 0, so not
a pod's user-namespaced root either) and in our network namespace (IPVS tables are per
network namespace: kubeadm's DaemonSet pod shares the node's through hostNetwork, though
not its PID namespace, so the network namespace is the test, not the PID one). Its mode,
most trustworthy first: its /proxyMode answer on the metrics address (what it really
runs; asked only when that address is loopback, so no process makes us send a request
elsewhere), then its --proxy-mode flag, then `mode:` in its --config file (read through
/proc/PID/root, so a container's file is found too; regular files only, capped, never
blocking). A kube-proxy whose mode none of these tell is reported running with mode
'unknown', and the reason is said.

find_processes(), mode_from_argv(), config_values(), metrics_url() and decide() take a
proc root or text and are tested with a fake /proc tree; detect() adds the HTTP question.
"""

from __future__ import annotations

import collections
import ipaddress
import os
import re
import stat

PROCESS_NAME = 'kube-proxy'
DEFAULT_METRICS = '127.0.0.1:10249'
UNKNOWN = 'unknown'
# kube-proxy's empty mode means its platform default: iptables on Linux.
DEFAULT_MODE = 'iptables'
HTTP_TIMEOUT = 2.0
# A KubeProxyConfiguration is a few KiB; more is not one (or is /dev/zero behind a link).
CONFIG_MAX_BYTES = 1 << 20


class Status(collections.namedtuple('Status', ('running', 'pids', 'mode', 'source', 'detail'))):
    """running: a kube-proxy process exists; pids: their ids; mode: 'ipvs', 'iptables',
    'nftables', ..., 'unknown' (running, mode not found) or '' (not running);
    source: where the mode came from ('metrics', 'flag', 'config', ''); detail: one
    line for messages."""

    __slots__ = ()

    @property
    def ipvs(self):
        """True (IPVS mode), False (not running or another mode) or None (unknown)."""
        if not self.running:
            return False
        return None if self.mode == UNKNOWN else self.mode == 'ipvs'


def _read(path, mode='r'):
    try:
        with open(path, mode) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def read_regular(path, limit=CONFIG_MAX_BYTES):
    """path's text if it is a regular file of at most limit bytes, else None. Checked
    before opening (no device is opened) and again on the open file (no swap in between);
    O_NONBLOCK so a FIFO cannot hang the run. Links are followed: a ConfigMap volume's
    files are relative links into its ..data directory."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            return None
        return b''.join(chunks).decode('utf-8', 'replace')
    except OSError:
        return None
    finally:
        os.close(fd)


def _status_ids(text, field):
    """The ids of a /proc/PID/status line ('Uid:' -> [real, effective, saved, fs])."""
    for line in (text or '').splitlines():
        if line.startswith(field + ':'):
            return line.split()[1:]
    return []


def _network_namespace(base):
    """An identity of the network namespace of the process at base (/proc/PID), or None.
    /proc/PID/net shows that namespace's files, and each namespace has its own inode
    numbers there; unlike /proc/PID/ns/net, reading it needs no CAP_SYS_PTRACE, which the
    reconcile unit's sandbox does not grant."""
    try:
        return os.stat(os.path.join(base, 'net', 'dev')).st_ino
    except OSError:
        return None


def _believed(base, ours):
    """True when the process at base runs as root in the network namespace ours (None:
    ours unknown, so not compared: refusing wrongly is the safe side)."""
    uids = _status_ids(_read(os.path.join(base, 'status')), 'Uid')
    if uids[:2] != ['0', '0']:
        return False
    return ours is None or _network_namespace(base) == ours


def find_processes(proc_root='/proc'):
    """[(pid, argv)] of kube-proxy processes under proc_root that run as root in this
    process's network namespace (gone or unreadable processes are skipped)."""
    found = []
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return found
    ours = _network_namespace(os.path.join(proc_root, 'self'))
    for entry in sorted((e for e in entries if e.isdigit()), key=int):
        base = os.path.join(proc_root, entry)
        comm = (_read(os.path.join(base, 'comm')) or '').strip()
        raw = _read(os.path.join(base, 'cmdline'), 'rb') or b''
        argv = [part.decode('utf-8', 'replace') for part in raw.split(b'\0') if part]
        # comm is cut at 15 characters; argv[0] may be a path (or a wrapper's name).
        if comm == PROCESS_NAME or (argv and os.path.basename(argv[0]) == PROCESS_NAME):
            if _believed(base, ours):
                found.append((int(entry), argv))
    return found


def _flag(argv, name):
    """Value of --name=value or --name value (last wins), or None."""
    value = None
    for index, arg in enumerate(argv):
        if arg.startswith('--%s=' % name) or arg.startswith('-%s=' % name):
            value = arg.split('=', 1)[1]
        elif arg in ('--%s' % name, '-%s' % name) and index + 1 < len(argv):
            value = argv[index + 1]
    return value


def mode_from_argv(argv):
    """The --proxy-mode flag's value ('' means the default), or None when absent."""
    return _flag(argv, 'proxy-mode')


def config_values(text):
    """(mode, metricsBindAddress) from a KubeProxyConfiguration's text (YAML or JSON);
    None for what it does not set. Top-level keys only: a regex, not a YAML parser,
    so no third-party import is needed."""
    values = {}
    for key in ('mode', 'metricsBindAddress'):
        match = re.search(r'''^["']?%s["']?\s*:\s*["']?([^"'\s,#}]*)''' % key, text, re.MULTILINE)
        values[key] = match.group(1) if match else None
    return values['mode'], values['metricsBindAddress']


def metrics_url(bind_address):
    """(url, '') of /proxyMode for a metricsBindAddress (0.0.0.0 / :: / empty host ->
    loopback), or (None, why) when the address is not loopback: the flag and the config
    are the process's to write, so only this node's loopback is asked."""
    address = bind_address or DEFAULT_METRICS
    host, _sep, port = address.rpartition(':')
    host = host.strip('[]')
    if host in ('', '0.0.0.0', '::'):
        host = '127.0.0.1'
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or not (port or '10249').isdigit():
        return None, 'metrics address %s not contacted (only loopback is asked)' % address
    if ':' in host:
        host = '[%s]' % host
    return 'http://%s:%s/proxyMode' % (host, port or '10249'), ''


def decide(processes, answer, flag_mode, config_mode, answer_error=''):
    """The Status, from what was found: answer is /proxyMode's body (None when not
    reachable, answer_error then says why), flag_mode/config_mode as read (None when
    absent)."""
    pids = tuple(pid for pid, _argv in processes)
    if not processes:
        return Status(False, (), '', '', 'no kube-proxy process')
    if answer is not None and answer.strip():
        return Status(True, pids, answer.strip(), 'metrics', 'kube-proxy (pid %s) reports mode %s'
                      % (', '.join(map(str, pids)), answer.strip()))
    for source, mode in (('flag', flag_mode), ('config', config_mode)):
        if mode is not None:
            mode = mode or DEFAULT_MODE
            return Status(True, pids, mode, source, 'kube-proxy (pid %s) runs with mode %s from its %s%s'
                          % (', '.join(map(str, pids)), mode, source,
                             ' (metrics not reachable: %s)' % answer_error if answer_error else ''))
    return Status(True, pids, UNKNOWN, '', 'kube-proxy (pid %s) is running in an unknown mode: %s'
                  % (', '.join(map(str, pids)), answer_error or 'no mode in its flags or config'))


def _ask(url):
    """(body, error text) of GET url: a plain connection (never through a proxy: it is
    the node's own port), and no ansible-core needed (the node's entry point asks too)."""
    import http.client  # only when a kube-proxy runs: its import costs as much as a small sync
    import urllib.parse
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=HTTP_TIMEOUT)
    try:
        connection.request('GET', parts.path or '/')
        response = connection.getresponse()
        if response.status != 200:
            return None, '%s: HTTP %d %s' % (url, response.status, response.reason)
        return response.read(256).decode('ascii', 'replace'), ''
    except Exception as exc:  # any failure to ask means "not reachable"
        return None, '%s: %s' % (url, exc)
    finally:
        connection.close()


def detect(proc_root='/proc', ask=_ask):
    """Status of kube-proxy on this node (see the module doc string). ask(url) ->
    (body or None, error text) is the HTTP question (tests pass a stand-in)."""
    processes = find_processes(proc_root)
    if not processes:
        return decide(processes, None, None, None)
    pid, argv = processes[0]
    flag_mode = mode_from_argv(argv)
    config_mode, bind = None, _flag(argv, 'metrics-bind-address')
    path = _flag(argv, 'config')
    if path:
        text = read_regular(os.path.join(proc_root, str(pid), 'root', path.lstrip('/')))
        if text is None:
            text = read_regular(path)
        if text is not None:
            config_mode, config_bind = config_values(text)
            bind = bind or config_bind
    url, error = metrics_url(bind)
    answer = None
    if url:
        answer, error = ask(url)
    return decide(processes, answer, flag_mode, config_mode, error)
