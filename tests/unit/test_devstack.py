"""The native dev stack's bookkeeping (deploy/native/devstack.py): what runs, told from pid files.

A process killed with SIGKILL stays a zombie until its parent reaps it, and `kill(pid, 0)` still
finds a zombie; a pid may also be given to another process later. These tests make real
processes (a zombie included) and check that `make up` and `make status` read them alike.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.native.devstack import Part, Stack, free_port, pid_line, process_state, read_pid, wait_gone

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")


def eventually(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            assert value, f"condition not met within {timeout}s"
            return value
        time.sleep(0.02)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path, kafka_port=free_port(), mongo_port=free_port(), prometheus_port=None)


@pytest.fixture
def feedback(stack: Stack) -> Iterator[Part]:
    """A part launched as `up_services` launches one, here a sleeper standing in for the feedback service."""
    (part,) = [part for part in stack.service_parts() if part.name == "feedback"]
    part.argv = [sys.executable, "-c", "import time; time.sleep(120)"]
    part.port = free_port()
    part.launch()
    try:
        yield part
    finally:
        assert part.proc is not None
        part.proc.kill()
        part.proc.wait(10)


def test_a_killed_service_left_a_zombie_is_not_running_for_up_nor_for_status(stack: Stack, feedback: Part) -> None:
    assert feedback.proc is not None
    pid = feedback.proc.pid
    assert feedback.running() == pid
    assert stack.status()["feedback"] == f"running, pid {pid}"

    os.kill(pid, signal.SIGKILL)  # a crash; nobody reaps it (the test holds the Popen and does not wait)
    eventually(lambda: (process_state(pid) or ("?",))[0] == "Z")
    os.kill(pid, 0)  # the zombie is still there for kill(pid, 0): what read_pid used to trust

    assert read_pid(feedback.pidfile) is None
    (again,) = [part for part in stack.service_parts() if part.name == "feedback"]
    assert again.running() is None, "make up would say it runs, and start nothing"
    assert stack.status()["feedback"] == "stopped"
    assert "feedback" not in stack.pids()


def test_a_process_whose_main_thread_ended_runs_while_another_thread_does(tmp_path: Path) -> None:
    """The leader thread of a process shows as a zombie as soon as it ends, though the process goes
    on (or is still closing its sockets after a SIGKILL): that is not a stopped process."""
    script = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=time.sleep, args=(120,)).start()\n"
        "ctypes.CDLL(None).pthread_exit(None)  # the main thread ends; the sleeper goes on\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        pidfile = tmp_path / "kafka.pid"
        pidfile.write_text(pid_line(proc.pid))
        eventually(lambda: (process_state(proc.pid) or ("?",))[0] == "Z")
        assert len(os.listdir(f"/proc/{proc.pid}/task")) == 2
        assert read_pid(pidfile) == proc.pid
        assert not wait_gone(proc.pid, 0.2), "our child is not gone before it can be reaped"
        proc.kill()
        assert wait_gone(proc.pid, 20)
        assert read_pid(pidfile) is None
    finally:
        proc.kill()
        proc.wait(10)


def test_a_pid_file_names_the_process_that_was_launched_not_one_that_got_its_pid_later(tmp_path: Path) -> None:
    pidfile = tmp_path / "queue.pid"
    me = os.getpid()
    state = process_state(me)
    assert state is not None
    pidfile.write_text(pid_line(me))
    assert pidfile.read_text().split() == [str(me), str(state[1])]
    assert read_pid(pidfile) == me
    pidfile.write_text(f"{me} {state[1] + 1}\n")  # the same pid, another start: another process
    assert read_pid(pidfile) is None


def test_a_pid_file_of_an_older_devstack_holds_the_pid_alone(tmp_path: Path) -> None:
    pidfile = tmp_path / "kafka.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    assert read_pid(pidfile) == os.getpid()
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(10)
    pidfile.write_text(f"{ended.pid}\n")
    assert read_pid(pidfile) is None
    for garbage in ("", "not a pid", "12 later"):
        pidfile.write_text(garbage)
        assert read_pid(pidfile) is None
    pidfile.unlink()
    assert read_pid(pidfile) is None


def test_the_process_state_is_read_past_a_command_name_with_spaces_and_parentheses(tmp_path: Path) -> None:
    sleeper = tmp_path / "x) (y z"
    sleeper.symlink_to(Path("/bin/sleep"))
    proc = subprocess.Popen([str(sleeper), "60"])
    try:
        stat = Path(f"/proc/{proc.pid}/stat")
        eventually(lambda: "(x) (y z)" in stat.read_text())  # exec'd: the name is the link's
        assert stat.read_text().split()[2] not in "RSDZ", "a naive split would read the name as the state"
        state = process_state(proc.pid)
        assert state is not None
        assert state[0] in "RSD"
        assert state == process_state(proc.pid)  # the start time does not change while it runs
        pidfile = tmp_path / "sleeper.pid"
        pidfile.write_text(pid_line(proc.pid))
        assert read_pid(pidfile) == proc.pid
    finally:
        proc.kill()
        proc.wait(10)
    assert process_state(proc.pid) is None
