"""Development fleet (``make run``): every Python process forked from one preloaded parent.

Deployed hosts run one systemd unit per worker, so each restarts on its own and
nothing can be shared between them. In development one interpreter imports what every
process of the fleet needs (Celery's worker, beat and events, kombu, redis-py, Django's
framework, Flower's web stack) and forks each worker, beat and Flower from itself: those
pages are then in memory once instead of seven times (docs/performance.md has the
figures).

What is *not* preloaded is anything that reads settings: no ``django.setup()``, no site
module. Each forked process starts like ``manage.py <command>`` would — it picks its own
site's settings, populates its own app registry and connects its own Celery app's
signals — only without paying for the imports again.

:class:`Supervisor` starts them, prefixes their output with their names (honcho's
printer) and stops them all on Ctrl-C or when one ends.

    python -m platform_core.processes.devfleet SPEC.json   (written by ``manage.py runplatform``)
"""

import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import traceback
from datetime import datetime

# Imported once in the parent; none of them reads Django settings at import time
# (tests/unit/test_devfleet.py checks that, and that each one exists).
PRELOADED_MODULES = (
    "celery.apps.beat",
    "celery.apps.worker",
    "celery.backends.redis",
    "celery.bin.celery",
    "celery.concurrency.prefork",
    "celery.events.state",
    "celery.worker.consumer",
    "celery.worker.strategy",
    "kombu.transport.redis",
    "redis",
    "django.core.management",
    "django.db.models",
    "django.db.backends.sqlite3.base",
    "django.forms",
    "django.template",
    "django.urls",
    "django.views.generic",
    "django.contrib.admin.sites",
    "flower.app",
    "flower.command",
    "tornado.web",
)


def preload() -> None:
    for name in PRELOADED_MODULES:
        importlib.import_module(name)
    # Keep the preloaded objects out of every child's garbage collections, which would
    # otherwise write to (and so copy) each of their pages (see platform_core.tasks.forking).
    gc.collect()
    gc.freeze()


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # sys.exit("message")
    return 1


def _become_command(args: list[str], env: dict[str, str], output: int) -> None:
    """In the forked child: run ``manage.py *args`` here, then exit (never returns)."""
    code = 1
    try:
        os.setsid()  # its own process group, as honcho's shell children have
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)  # not the supervisor's handlers
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["manage.py", *args]
        from platform_core.processes.cli import run_manage

        run_manage(sys.argv)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # report anything, then exit with 1
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class ForkedCommand:
    """A management command run in a fork of this interpreter (pid, stdout)."""

    def __init__(self, cmd: list[str], env: dict[str, str], inherited=()):
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            for fd in (read, *inherited):
                os.close(fd)
            _become_command(cmd, env, write)
        os.close(write)
        self.pid = pid
        self.stdout = os.fdopen(read, "rb", buffering=0)


class Supervisor:
    """Starts the fleet, prints every line with its process's name (honcho's format),
    stops everything when one process ends or on Ctrl-C / SIGTERM: the Python
    processes first (warm shutdown, ``grace`` seconds, then SIGKILL), redis-server last,
    so the workers can still release their leases on the way out.

    honcho's own Manager runs a reader *process* per child (8 more forks, ~2.4 MB
    private each, measured); one selector loop here does the same reading."""

    def __init__(self, grace: float):
        from honcho.colour import get_colours
        from honcho.printer import Printer

        self.grace = grace
        self.printer = Printer(sys.stdout)
        self.colours = get_colours()
        self.names = {}  # pid -> (name, colour)
        self.children = {}  # pid -> is_python, while it runs
        self.buffers = {}  # fd -> (pid, pending bytes)
        self.selector = selectors.DefaultSelector()
        self.returncode = None
        self.stopping_since = None
        self.killed = self.redis_stopped = False

    def start(self, name: str, command, env: dict[str, str]) -> None:
        if isinstance(command, list):
            # The child must not hold the other processes' pipes open.
            child = ForkedCommand(command, env, [*self.buffers, self.selector.fileno()])
            pid, output = child.pid, child.stdout
        else:  # a shell command (redis-server), as honcho runs it
            popen = subprocess.Popen(  # noqa: S602 - the fleet's own command line
                command,
                shell=True,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            pid, output = popen.pid, popen.stdout
        self.printer.width = max(self.printer.width, len(name), len("system"))
        self.names[pid] = (name, next(self.colours))
        self.children[pid] = isinstance(command, list)
        self.buffers[output.fileno()] = (pid, b"")
        os.set_blocking(output.fileno(), False)
        self.selector.register(output, selectors.EVENT_READ)
        self._say(f"{name} started (pid={pid})")

    def loop(self) -> int:
        def request_stop(signum, _frame):
            self._say(f"{signal.Signals(signum).name} received")
            if self.returncode is None:
                self.returncode = 128 + signum
            self._begin_stopping()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        while self.children:
            self._read_ready(timeout=0.2)
            self._reap()
            self._escalate()
        deadline = time.monotonic() + 2  # what the last ones printed on their way out
        while self.buffers and time.monotonic() < deadline:
            self._read_ready(timeout=0.2)
        return self.returncode or 0

    def _read_ready(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout=timeout):
            self._read(key.fileobj)

    def _read(self, output) -> None:
        fd = output.fileno()
        pid, pending = self.buffers[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:  # the process closed its output (it is exiting)
            self.selector.unregister(output)
            output.close()
            data, pending = pending, b""
            del self.buffers[fd]
        else:  # whole lines now, the rest when its newline comes
            data, _, pending = (pending + data).rpartition(b"\n")
            self.buffers[fd] = (pid, pending)
        if data:
            self._write(*self.names[pid], data)

    def _reap(self) -> None:
        for pid in list(self.children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                continue
            del self.children[pid]
            name, _ = self.names[pid]
            code = os.waitstatus_to_exitcode(status)
            self._say(f"{name} stopped (rc={code})")
            if self.returncode is None:
                self.returncode = code
            self._begin_stopping()

    def _begin_stopping(self) -> None:
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
            self._signal_all(signal.SIGTERM, python=True)

    def _escalate(self) -> None:
        if self.stopping_since is None:
            return
        if not any(self.children.values()):
            if not self.redis_stopped:
                self.redis_stopped = True
                self._signal_all(signal.SIGTERM, python=False)  # redis last
        elif time.monotonic() - self.stopping_since > self.grace and not self.killed:
            self.killed = True
            self._say(f"still running after {self.grace:.0f} s: SIGKILL")
            self._signal_all(signal.SIGKILL, python=True)

    def _signal_all(self, signum: int, *, python: bool) -> None:
        for pid, is_python in self.children.items():
            if is_python == python:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signum)

    def _say(self, text: str) -> None:
        self._write("system", None, text.encode())

    def _write(self, name: str, colour, data: bytes) -> None:
        from honcho.printer import Message

        self.printer.write(Message("line", data + b"\n", datetime.now(), name, colour))


def main(spec_path: str) -> None:
    with open(spec_path) as handle:
        spec = json.load(handle)
    os.unlink(spec_path)
    preload()
    supervisor = Supervisor(spec["stop_grace_seconds"])
    print(spec["banner"], flush=True)
    for process in spec["processes"]:
        env = {**spec["env"], **process.get("env", {})}  # e.g. its own Redis user
        supervisor.start(process["name"], process["command"], env)
    sys.exit(supervisor.loop())


if __name__ == "__main__":
    main(sys.argv[1])
