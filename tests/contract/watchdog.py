#!/usr/bin/env python3
"""Run an emulator server for the contract tests and stop it when the test process goes away.

Usage: watchdog.py [--cleanup DIR] -- SERVER_ARGV...

Started by tests/contract/emulator.rs with its standard input connected to a pipe whose
write end the test process keeps open for as long as it lives and never writes to. libtest
has no global teardown, so the end of that pipe is the signal: when the test process exits
for any reason (tests done, panic, abort, SIGKILL), the kernel closes the pipe, this script
reads EOF, stops the server (SIGTERM, up to 5 s grace, then SIGKILL), removes DIR if given,
and exits. It also exits when the server dies on its own, so nothing is left behind.

The server inherits this script's environment, working directory, stdout and stderr (the
test harness points them at a log file). Ctrl-C (SIGINT to the whole foreground process
group) is ignored here: the server gets it too, and its exit, or the EOF, ends this script.
On Linux the server also gets SIGTERM if this script is killed outright (PR_SET_PDEATHSIG).
"""

import os
import select
import shutil
import signal
import subprocess
import sys
import time

GRACE_SECONDS = 5.0


class Stop(Exception):
    """Raised from a signal handler to leave the wait loop."""


def log(msg):
    sys.stderr.write("[vhs-watchdog %s pid %d] %s\n" % (time.strftime("%H:%M:%S"), os.getpid(), msg))
    sys.stderr.flush()


def parse_args(argv):
    cleanup = None
    args = list(argv)
    while args and args[0] != "--":
        if args[0] == "--cleanup" and len(args) >= 2:
            cleanup = args[1]
            args = args[2:]
        else:
            sys.exit("watchdog.py: unexpected argument %r\n%s" % (args[0], __doc__))
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit("watchdog.py: no server command given\n%s" % __doc__)
    return cleanup, args


def make_preexec(parent_pid):
    """In the child, before exec: ask for SIGTERM when this watchdog dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None

    def preexec():
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except Exception:
            pass
        # The watchdog may have died between fork and prctl: then nobody would stop us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def stop_server(proc):
    if proc.poll() is not None:
        return
    log("stopping server pid %d (SIGTERM)" % proc.pid)
    started = time.monotonic()
    try:
        proc.terminate()
        proc.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        log("server pid %d still running after %.0f s: SIGKILL" % (proc.pid, GRACE_SECONDS))
        proc.kill()
        proc.wait()
    log("server pid %d stopped after %.2f s (exit status %s)" % (proc.pid, time.monotonic() - started, proc.returncode))


def main():
    cleanup, server_argv = parse_args(sys.argv[1:])

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_signal(signum, _frame):
        raise Stop("signal %d" % signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    proc = None
    status = 0
    try:
        pdeathsig = make_preexec(os.getpid())

        def child_setup():
            # SIG_IGN survives exec: give the server Ctrl-C back.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if pdeathsig is not None:
                pdeathsig()

        proc = subprocess.Popen(server_argv, stdin=subprocess.DEVNULL, preexec_fn=child_setup)
        log("started server pid %d: %s" % (proc.pid, " ".join(server_argv)))
        stdin_fd = sys.stdin.fileno()
        while True:
            code = proc.poll()
            if code is not None:
                log("server pid %d exited on its own with status %s" % (proc.pid, code))
                status = 1
                break
            readable, _, _ = select.select([stdin_fd], [], [], 0.25)
            if readable:
                try:
                    data = os.read(stdin_fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    log("test process gone (stdin closed)")
                    break
    except Stop as why:
        log("received %s" % why)
    finally:
        # Signals must not interrupt the shutdown itself.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if proc is not None:
            stop_server(proc)
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
