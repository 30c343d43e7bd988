# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node's reconcile config: /etc/netlb-ipvs/reconcile.json, rendered by the
ipvs_reconcile role from the same inventory variables site.yml hands the modules.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

    {"version": 1,
     "node": {"modules": ["ip_vs", "ip_vs_rr", ...], "sysctl": {"net.ipv4.ip_forward": "1", ...},
              "ipvs_timeouts": {"tcp": "900s", "tcp_fin": "0s", "udp": "0s"}},
     "static": null | {"services_file": PATH, "scope": [...], "exclusive": true, ...},
     "kubernetes": null | {k8s_service_proxy's options},
     "pull": null | {"url", "branch", "directory", "playbook", "inventory", "verify_commit", "gnupg_home"},
     "metrics_dir": PATH | null,
     "timeout": SECONDS}

load() checks all of it, the static table with ipvs_virtual_server's own validation and
the Kubernetes options with k8s_service_proxy's, and raises one ValidationError listing
every problem by its field path (static.services[3].port, kubernetes.scheduler, ...)
before anything on the node is read or changed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zlib

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._files import FileError, read_text
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import timeouts, validation
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DEFAULT_PATH as DRAIN_STATE_PATH
from ansible_collections.netlb.ipvs.plugins.module_utils._kernel_modules.request import MODULE_NAME_MAX, MODULE_NAME_RE

DEFAULT_PATH = '/etc/netlb-ipvs/reconcile.json'
DEFAULT_TIMEOUT = 300
VERSION = 1

TOP_KEYS = frozenset(('version', 'node', 'static', 'kubernetes', 'pull', 'metrics_dir', 'timeout'))
# ipvs_virtual_server's table options a node runs with (services come from services_file).
STATIC_KEYS = frozenset(('services_file', 'scope', 'exclusive', 'allow_empty', 'purge_real_servers', 'graceful',
                         'drain_timeout', 'scheduler_hold', 'backend', 'drain_state_path'))
STATIC_DEFAULTS = {'exclusive': True, 'allow_empty': False, 'purge_real_servers': True, 'graceful': True,
                   'drain_timeout': 0, 'scheduler_hold': True, 'backend': 'auto',
                   'drain_state_path': DRAIN_STATE_PATH}
# k8s_service_proxy's options that shape a sync besides the connection's and the
# pipeline's own (kubernetes_keys()); the module's return_* and apply are not a node's
# business. A unit test holds them inside the module's argument spec.
SYNC_KEYS = frozenset(('service_cidrs', 'cluster_cidrs', 'node_port_range', 'node_port_addresses', 'families',
                       'external_ips_allowed_cidrs', 'scheduler', 'scheduler_flags', 'dummy_interface', 'masquerade',
                       'max_delete_ratio', 'force', 'allow_kube_proxy', 'drain_timeout', 'scheduler_hold'))
PULL_KEYS = frozenset(('url', 'branch', 'directory', 'playbook', 'inventory', 'verify_commit', 'gnupg_home',
                       'extra_args'))
_SYSCTL = re.compile(r'^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$')
# k8s_service_proxy's booleans the sync reads with bool(): a text "no" would be true.
KUBERNETES_BOOLEANS = ('force', 'allow_kube_proxy', 'scheduler_hold')


@dataclasses.dataclass(frozen=True)
class Static:
    """The static table: a validated request and the engine's options."""

    request: object  # validation.Request
    fingerprint: str  # of the services file and these settings: the same on two runs = the same input
    purge_real_servers: bool
    graceful: bool
    drain_timeout: int
    scheduler_hold: bool
    backend: str
    drain_state_path: str


@dataclasses.dataclass(frozen=True)
class Config:
    modules: tuple = ()
    sysctl: tuple = ()  # (key, value) pairs, values as text
    ipvs_timeouts: timeouts.Timeouts = timeouts.Timeouts(0, 0, 0)  # seconds, 0: the kernel's
    static: Static = None
    kubernetes: dict = None  # k8s_service_proxy params, checked
    pull: dict = None
    metrics_dir: str = None
    timeout: int = DEFAULT_TIMEOUT


def load(path=DEFAULT_PATH):
    """The Config in path. Raises ValidationError (every problem, by field path)."""
    try:
        text = read_text(path)
    except FileError as exc:
        raise ValidationError('%s' % exc)
    if text is None:
        raise ValidationError('%s: no such file (the ipvs_reconcile role writes it)' % path)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValidationError('%s: not JSON: %s' % (path, exc))
    return parse(document, path)


def metrics_dir_of(path=DEFAULT_PATH):
    """The metrics_dir a config names, read without checking the rest (a run whose config
    is bad still writes its failure to the textfile); None when there is none."""
    try:
        document = json.loads(read_text(path) or 'null')
    except (FileError, ValueError):
        return None
    value = document.get('metrics_dir') if isinstance(document, dict) else None
    return value if isinstance(value, str) and value.startswith('/') else None


def parse(document, path='config'):
    """A parsed JSON document -> Config (see load)."""
    problems = []
    if not isinstance(document, dict):
        raise ValidationError('%s: a JSON object is expected, not %s' % (path, type(document).__name__))
    _unknown(document, TOP_KEYS, '', problems)
    if document.get('version', VERSION) != VERSION:
        problems.append('version: %r is not %d' % (document.get('version'), VERSION))
    modules, sysctl, ipvs_timeouts = _node(document.get('node'), problems)
    static = _static(document.get('static'), problems)
    kubernetes = _kubernetes(document.get('kubernetes'), problems)
    pull = _pull(document.get('pull'), problems)
    metrics_dir = document.get('metrics_dir') or None
    if metrics_dir is not None and (not isinstance(metrics_dir, str) or not metrics_dir.startswith('/')):
        problems.append('metrics_dir: %r is not an absolute path' % (metrics_dir,))
    timeout = document.get('timeout', DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        problems.append('timeout: %r is not a number of seconds (1 or more)' % (timeout,))
    if problems:
        raise ValidationError(['%s: %s' % (path, problem) for problem in problems])
    return Config(modules=modules, sysctl=sysctl, ipvs_timeouts=ipvs_timeouts, static=static, kubernetes=kubernetes, pull=pull,
                  metrics_dir=metrics_dir, timeout=timeout)


def _unknown(section, allowed, prefix, problems):
    for key in sorted(set(section) - allowed):
        problems.append('%s%s: unknown key (expected one of %s)' % (prefix, key, ', '.join(sorted(allowed))))


def _section(value, name, problems):
    """None, or the dict; a problem when it is something else."""
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append('%s: %r is not an object' % (name, value))
        return None
    return value


def _node(value, problems):
    node = _section(value, 'node', problems) or {}
    _unknown(node, frozenset(('modules', 'sysctl', 'ipvs_timeouts')), 'node.', problems)
    modules = node.get('modules') or []
    if not isinstance(modules, list):
        problems.append('node.modules: %r is not a list' % (modules,))
        modules = []
    for index, name in enumerate(modules):
        # ipvs_modules' rule: a leading '-' would reach modprobe as an option.
        if not isinstance(name, str) or not MODULE_NAME_RE.match(name) or len(name) > MODULE_NAME_MAX:
            problems.append('node.modules[%d]: %r is not a kernel module name' % (index, name))
    sysctl = node.get('sysctl') or {}
    if not isinstance(sysctl, dict):
        problems.append('node.sysctl: %r is not an object of key: value' % (sysctl,))
        sysctl = {}
    pairs = []
    for key, setting in sorted(sysctl.items()):
        if not _SYSCTL.match(key):
            problems.append('node.sysctl.%s: not a sysctl key (dotted, like net.ipv4.ip_forward)' % key)
        elif isinstance(setting, (dict, list)) or setting is None:
            problems.append('node.sysctl.%s: %r is not a value' % (key, setting))
        else:
            pairs.append((key, _text(setting)))
    return tuple(modules), tuple(pairs), _ipvs_timeouts(node.get('ipvs_timeouts'), problems)


def _ipvs_timeouts(value, problems):
    """Timeouts of node.ipvs_timeouts ({tcp, tcp_fin, udp}: durations or seconds)."""
    section = _section(value, 'node.ipvs_timeouts', problems) or {}
    _unknown(section, frozenset(timeouts.FIELDS), 'node.ipvs_timeouts.', problems)
    try:
        return timeouts.wanted(section)
    except ValidationError as exc:
        problems.extend('node.ipvs_timeouts.%s' % problem for problem in exc.problems)
        return timeouts.Timeouts(0, 0, 0)


def _text(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    return ' '.join(str(value).split())


def _static(value, problems):
    static = _section(value, 'static', problems)
    if static is None:
        return None
    _unknown(static, STATIC_KEYS, 'static.', problems)
    settings = dict(STATIC_DEFAULTS)
    settings.update((key, setting) for key, setting in static.items() if setting is not None)
    services_file = settings.get('services_file')
    if not isinstance(services_file, str) or not services_file.startswith('/'):
        problems.append('static.services_file: %r is not an absolute path' % (services_file,))
        return None
    try:
        text = read_text(services_file)
    except FileError as exc:
        problems.append('static.services_file: %s' % exc)
        return None
    if text is None:
        problems.append('static.services_file: %s does not exist' % services_file)
        return None
    for key in ('exclusive', 'allow_empty', 'purge_real_servers', 'graceful', 'scheduler_hold'):
        if not isinstance(settings[key], bool):
            problems.append('static.%s: %r is not a boolean' % (key, settings[key]))
    if settings['backend'] not in ('auto', 'netlink', 'ipvsadm'):
        problems.append('static.backend: %r is not auto, netlink or ipvsadm' % (settings['backend'],))
    try:
        # ipvs_virtual_server's own checks, table given as JSON text (parsed there in C).
        request = validation.parse_request({
            'services': text, 'scope': settings.get('scope'), 'exclusive': settings['exclusive'],
            'allow_empty': settings['allow_empty'], 'drain_timeout': settings['drain_timeout']})
    except ValidationError as exc:
        problems.extend('static.%s' % problem if not problem.startswith('services') else
                        'static.%s (%s)' % (problem, services_file) for problem in exc.problems)
        return None
    digest = zlib.crc32(json.dumps(settings, sort_keys=True, default=str).encode('utf-8'), zlib.crc32(text.encode('utf-8')))
    return Static(request=request, fingerprint='%08x' % digest, purge_real_servers=settings['purge_real_servers'], graceful=settings['graceful'],
                  drain_timeout=int(settings['drain_timeout']), scheduler_hold=settings['scheduler_hold'],
                  backend=settings['backend'], drain_state_path=settings['drain_state_path'])


def kubernetes_keys():
    """Every option a node's Kubernetes section may set."""
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import connection, pipeline
    return frozenset(set(pipeline.DEFAULTS) | set(name for name, _spec, _vars in connection.AUTH_OPTIONS) | SYNC_KEYS)


def _kubernetes(value, problems):
    params = _section(value, 'kubernetes', problems)
    if params is None:
        return None
    # Imported only for a Kubernetes node: a director's run does not pay for them.
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import pipeline
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.options import parse_options
    allowed = kubernetes_keys()
    _unknown(params, allowed, 'kubernetes.', problems)
    params = pipeline.with_defaults(dict((key, setting) for key, setting in params.items() if key in allowed))
    if params['source'] not in ('api', 'manifests'):
        problems.append('kubernetes.source: %r is not api or manifests' % (params['source'],))
    elif params['source'] == 'manifests' and not params.get('path'):
        problems.append('kubernetes.path: give the manifests file or directory (source is manifests)')
    for key in ('namespaces', 'service_cidrs', 'cluster_cidrs', 'node_port_addresses', 'families',
                'external_ips_allowed_cidrs', 'scheduler_flags'):
        if key in params and not isinstance(params[key], list):
            problems.append('kubernetes.%s: %r is not a list' % (key, params[key]))
    for key in KUBERNETES_BOOLEANS:
        if key in params and not isinstance(params[key], bool):
            problems.append('kubernetes.%s: %r is not a boolean' % (key, params[key]))
    try:
        parse_options(params)  # k8s_service_proxy's own checks, before the cluster is read
    except ValidationError as exc:
        problems.extend('kubernetes.%s' % problem for problem in exc.problems)
    except (TypeError, ValueError, AttributeError) as exc:
        problems.append('kubernetes: %s' % exc)
    return params


def _pull(value, problems):
    pull = _section(value, 'pull', problems)
    if pull is None:
        return None
    _unknown(pull, PULL_KEYS, 'pull.', problems)
    for key in ('url', 'directory', 'playbook'):
        if not isinstance(pull.get(key), str) or not pull.get(key):
            problems.append('pull.%s: give it (a non-empty string)' % key)
    if not isinstance(pull.get('verify_commit', False), bool):
        problems.append('pull.verify_commit: %r is not a boolean' % (pull.get('verify_commit'),))
    return dict(pull)
