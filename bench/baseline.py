"""A previous revision of the platform, measured beside this tree in the same run:
``make bench BENCH_BASELINE=<git revision>`` adds the system ``platform@<short sha>``.

The revision is exported with ``git archive`` into a temporary directory, and this
tree's ``bench/`` replaces the revision's own: both revisions are driven by the same
harness, producer and benchmark tasks, only the platform's code differs. Its processes
run with that directory as working directory and sole PYTHONPATH entry, with the same
virtualenv (the dependencies are the same), so they import ``platform_core``, ``sites``
and ``celery_tasks`` from the revision and cannot reach this tree's. ``check_origin``
verifies it for every producer and every worker that loads the benchmark tasks.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "platform@"
ALIAS = "platform@base"  # BENCH_SYSTEMS may name the baseline so, whatever its revision
# Printed by bench.systems.platform_tasks when a process imports it.
ORIGIN = "bench: platform_core imported from "


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


class Baseline:
    """``with Baseline(rev) as baseline:`` the revision's tree at ``baseline.root``,
    removed again on the way out."""

    def __init__(self, revision: str):
        self.revision = revision
        try:
            self.sha = git("rev-parse", "--verify", "--end-of-options", f"{revision}^{{commit}}")
        except SystemExit as exc:
            raise SystemExit(f"BENCH_BASELINE={revision}: not a commit of {ROOT} ({exc})") from None
        self.short = git("rev-parse", "--short", self.sha)
        self.name = f"{PREFIX}{self.short}"
        self.root: Path | None = None

    def __enter__(self):
        self.root = Path(tempfile.mkdtemp(prefix=f"bench-{self.short}-"))
        try:
            archive = subprocess.Popen(
                ["git", "-C", str(ROOT), "archive", "--format=tar", self.sha],
                stdout=subprocess.PIPE,
            )
            with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
                tar.extractall(self.root, filter="data")
            if archive.wait():
                raise RuntimeError(f"git archive {self.sha} failed")
            shutil.rmtree(self.root / "bench", ignore_errors=True)
            shutil.copytree(
                ROOT / "bench", self.root / "bench", ignore=shutil.ignore_patterns("__pycache__")
            )
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info):
        self.remove()

    def remove(self):
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)

    def queues(self) -> tuple[list[str], dict[str, str]]:
        """The revision's queues and worker commands (its sites may differ from ours)."""
        code = (
            "import json; from platform_core.config.queues import QUEUES, WORKER_COMMANDS;"
            "print(json.dumps([list(QUEUES), WORKER_COMMANDS]))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=self.root,
            env={**os.environ, "PYTHONPATH": str(self.root)},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"{self.name}: reading its queues failed: {done.stderr[-2000:]}")
        queues, commands = json.loads(done.stdout)
        return queues, commands


def check_origin(who: str, path: str | None, root: Path) -> None:
    """Fail unless ``path`` (a ``platform_core.__file__``) lies in ``root``."""
    if path is None:
        raise RuntimeError(f"{who}: did not say where it imported platform_core from")
    if not Path(path).resolve().is_relative_to(root.resolve()):
        raise RuntimeError(f"{who} imported platform_core from {path}, not from {root}")


def logged_origin(log_path: Path) -> str | None:
    """The ``platform_core.__file__`` a worker printed in its log, if it did."""
    for line in log_path.read_text(errors="replace").splitlines():
        if ORIGIN in line:
            return line.split(ORIGIN, 1)[1].strip()
    return None
