# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one way this collection runs a program.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Rules: argv lists only (never a shell), the C locale (output is parsed, so it must not
be translated), and every failure is a CommandError carrying cmd, rc, stdout and stderr
so a module can hand all four to fail_json. Nothing here exits the module.

A run given a timeout goes through coreutils' timeout(1) (AnsibleModule.run_command has
no timeout of its own, and module_utils may not use subprocess): a program still running
then is sent TERM, KILL_AFTER seconds later KILL, and the run is a CommandError saying it
timed out, whatever check says. Without timeout(1) on the node the program runs unbounded.
"""

from __future__ import annotations

import collections
import shlex

# LC_ALL wins over LANG; both are set so no inherited LC_* leaks a translation in.
C_LOCALE = {'LANG': 'C', 'LC_ALL': 'C', 'LC_MESSAGES': 'C'}

# Admin tools (modprobe, ipvsadm, sysctl) live in sbin, which a non-login PATH may lack.
SBIN_DIRS = ('/usr/local/sbin', '/usr/sbin', '/sbin')

# What a shell reports for "command not found"; used when the program cannot be started.
RC_NOT_STARTED = 127

# Seconds a node command (nft, conntrack, modprobe) may take: far beyond what any takes on a
# sane node, and a hung one no longer holds the run lock, and so every later run, for ever.
NODE_TIMEOUT = 60
# timeout(1)'s exit status when it killed the program (137 = 128 + KILL, when TERM was not
# enough, is reported as this too).
RC_TIMED_OUT = 124
KILL_AFTER = 5


def format_cmd(argv):
    """argv as one line a person can paste into a shell."""
    return ' '.join(shlex.quote(str(arg)) for arg in argv)


class CommandError(Exception):
    """A program failed or could not be started."""

    def __init__(self, argv, rc, stdout='', stderr='', msg=None):
        self.argv = list(argv)
        self.rc = rc
        self.stdout = stdout or ''
        self.stderr = stderr or ''
        if msg is None:
            detail = self.stderr.strip() or self.stdout.strip() or 'no output'
            msg = '%s failed (rc=%s): %s' % (format_cmd(self.argv), rc, detail)
        super(CommandError, self).__init__(msg)

    @property
    def cmd(self):
        return format_cmd(self.argv)

    def as_dict(self):
        """Keyword arguments for fail_json besides msg."""
        return {'cmd': self.cmd, 'rc': self.rc, 'stdout': self.stdout, 'stderr': self.stderr}


class CommandResult(collections.namedtuple('CommandResult', 'argv rc stdout stderr')):
    """What a finished program left: argv, rc, stdout and stderr (text)."""

    @property
    def cmd(self):
        return format_cmd(self.argv)


class Runner:
    """Runs argv lists through AnsibleModule.run_command.

    module is an AnsibleModule, or anything with its run_command and get_bin_path
    (tests and VM scripts pass a small stand-in; sanity forbids subprocess here).
    Tests may also replace _execute to script the outputs.
    """

    def __init__(self, module):
        self.module = module
        self._timeout_program = None

    def which(self, name, required=True):
        """Absolute path of a program, also looking in the sbin directories.

        Raises CommandError (rc 127) when required and absent, else returns None.
        """
        path = self.module.get_bin_path(name, opt_dirs=list(SBIN_DIRS))
        if path is None and required:
            raise CommandError([name], RC_NOT_STARTED, msg='%s: command not found (looked in PATH and %s)'
                               % (name, ', '.join(SBIN_DIRS)))
        return path

    def run(self, argv, check=True, data=None, ok_rc=(0,), timeout=None):
        """Run argv; raise CommandError if check and rc is not in ok_rc.

        data (text) goes to stdin exactly as given. timeout: seconds (None: no limit);
        a program still running then is killed and the run raises CommandError.
        """
        if isinstance(argv, (str, bytes)) or not argv:
            raise ValueError('argv must be a non-empty list, got %r' % (argv,))
        argv = [str(arg) for arg in argv]
        if timeout is None:
            rc, stdout, stderr = self._execute(argv, data)
        else:
            rc, stdout, stderr = self._execute(argv, data, timeout=timeout)
            if rc == RC_TIMED_OUT:
                raise CommandError(argv, rc, stdout, stderr,
                                   msg='%s timed out after %s s (killed)' % (format_cmd(argv), timeout))
        if check and rc not in ok_rc:
            raise CommandError(argv, rc, stdout, stderr)
        return CommandResult(argv, rc, stdout, stderr)

    def _execute(self, argv, data, timeout=None):
        """Return (rc, stdout, stderr); a program that cannot start gives rc 127, one
        killed after timeout seconds RC_TIMED_OUT."""
        bounded = False
        if timeout is not None:
            if self._timeout_program is None:
                self._timeout_program = self.which('timeout', required=False) or ''
            if self._timeout_program:
                argv = [self._timeout_program, '--kill-after=%d' % KILL_AFTER, '%ss' % timeout] + argv
                bounded = True
        try:
            rc, stdout, stderr = self.module.run_command(
                argv, check_rc=False, data=data, binary_data=True, environ_update=dict(C_LOCALE),
                expand_user_and_vars=False, handle_exceptions=False)
        except OSError as exc:
            return RC_NOT_STARTED, '', str(exc)
        if bounded and rc == 128 + 9:
            rc = RC_TIMED_OUT
        return rc, stdout, stderr
