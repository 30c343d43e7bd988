# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fallback backend: the ipvsadm program.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Reads `ipvsadm -S -n` (the configuration) and `ipvsadm -L -n --thresholds` (thresholds,
which -S does not save, and the ActiveConn/InActConn counters a graceful drain needs).
Writes every action in one `ipvsadm -R`, then reads the table back to see what took:
-R goes on past lines the kernel refuses, its exit status reflects only the last line,
and a line it cannot parse stops it with the earlier lines applied, so neither the
exit status nor stderr says what was applied. A failed call raises an error whose
evidence holds its cmd, rc, stdout and stderr, for the module result.

After a run drains servers it re-reads their counters with one `ipvsadm -L -n
--thresholds` of the whole table (read_counters): ipvsadm can list one service
(`-L -t VIP:PORT`) but that is a process per service, and a run may drain servers of
thousands; one listing is one process and half a read.
"""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils import _command
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import save_format
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import base


def reflected(action, table):
    """Whether table (read after applying) shows the effect of action."""
    service = table.get(action.service.key)
    if action.op in (model.DELETE_SERVICE, model.DELETE_SERVER) and service is None:
        return True
    if service is None:
        return False
    if action.op in (model.ADD_SERVICE, model.EDIT_SERVICE):
        return service.settings() == action.service.settings()
    current = service.server(action.server.key)
    if action.op == model.DELETE_SERVER:
        return current is None
    return current is not None and current == action.server


class IpvsadmBackend(base.Backend):
    """IPVS through ipvsadm; needs the ipvsadm package on the target."""

    name = 'ipvsadm'

    def __init__(self, runner, check_mode=False):
        """runner is a _command.Runner (around the AnsibleModule)."""
        super(IpvsadmBackend, self).__init__(check_mode)
        self.runner = runner
        self._path = None

    @property
    def path(self):
        if self._path is None:
            try:
                self._path = self.runner.which('ipvsadm')
            except _command.CommandError as exc:
                raise model.BackendError('%s; install the ipvsadm package or use backend netlink' % exc)
        return self._path

    def available(self):
        """Whether the ipvsadm program is installed."""
        try:
            return bool(self.path)
        except model.BackendError:
            return False

    def _run(self, args, data=None):
        try:
            return self.runner.run([self.path] + args, data=data, check=False)
        except _command.CommandError as exc:
            raise model.BackendError(str(exc), evidence=exc.as_dict())

    def _text(self, args):
        result = self._run(args)
        if result.rc != 0:
            error = _command.CommandError(result.argv, result.rc, result.stdout, result.stderr)
            raise model.BackendError(str(error), evidence=error.as_dict())
        return result.stdout

    def read(self):
        saved = self._text(['-S', '-n'])
        listed = self._text(['-L', '-n', '--thresholds'])
        try:
            table = save_format.parse(saved)
            listing = save_format.parse_listing(listed)
        except save_format.FormatError as exc:
            raise model.BackendError('cannot read ipvsadm output: %s' % exc)
        return save_format.with_listing(table, listing)

    def read_counters(self, keys):
        listed = self._text(['-L', '-n', '--thresholds'])
        try:
            listing = save_format.parse_listing(listed)
        except save_format.FormatError as exc:
            raise model.BackendError('cannot read ipvsadm output: %s' % exc)
        return dict((key, dict((server, (row.get('ActiveConn', 0), row.get('InActConn', 0)))
                               for server, row in listing[key].items()))
                    for key in keys if key in listing)

    def _apply(self, actions):
        script = save_format.restore_script(actions)
        result = self._run(['-R'], data=script)
        after = self.read()
        missing = [a for a in actions if not reflected(a, after)]
        if not missing:
            return
        applied = [a for a in actions if reflected(a, after)]
        detail = result.stderr.strip() or result.stdout.strip() or 'no message'
        raise model.ApplyError(
            'ipvsadm -R (rc=%d) left %d of %d action(s) undone, first %s: %s' % (
                result.rc, len(missing), len(actions), save_format.restore_line(missing[0]), detail),
            applied=applied, failed=missing[0],
            evidence={'cmd': result.cmd, 'rc': result.rc, 'stdout': result.stdout, 'stderr': result.stderr})
