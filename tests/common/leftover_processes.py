#!/usr/bin/env python3
"""Fails when a process the tests started is still running: any process whose environment carries
SAG_TEST_CHILD=<marker> (tests/common/subprocess.cc puts it in every child it starts), and any
audiences-gateway or segment-sim whose executable lies under the build directory (started by any
other means: shell and Node.js tests).

    leftover_processes.py BUILD_DIR            exit 1 listing them (pid, command line)
    leftover_processes.py BUILD_DIR --kill     the same, and SIGKILL them
    leftover_processes.py --selftest           starts a marked child, expects to find it

Only this user's processes are readable; other users' (and other build directories') are not
counted. Linux only (/proc).
"""
import os
import signal
import subprocess
import sys
import time

PROGRAMS = ("audiences-gateway", "segment-sim", "redis-server")


def marker(build_dir):
    return "SAG_TEST_CHILD=" + os.path.realpath(build_dir)


def leftovers(build_dir):
    build = os.path.realpath(build_dir) + "/"
    want = marker(build_dir).encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
            exe = os.readlink(f"/proc/{pid}/exe")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone, a zombie, or not ours
            continue
        ours = want in env or (exe.startswith(build) and os.path.basename(exe) in PROGRAMS)
        if ours:
            found.append((int(pid), cmd[:200]))
    return found


def selftest():
    build = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    env["SAG_TEST_CHILD"] = os.path.realpath(build)
    child = subprocess.Popen(["sleep", "60"], env=env)
    try:
        deadline = time.monotonic() + 10
        while not any(pid == child.pid for pid, _ in leftovers(build)):
            if time.monotonic() > deadline:
                print("FAIL: a marked child was not found", file=sys.stderr)
                return 1
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    if any(pid == child.pid for pid, _ in leftovers(build)):
        print("FAIL: a reaped child is still reported", file=sys.stderr)
        return 1
    print("ok: a marked child is found while it runs, not after")
    return 0


def main(argv):
    if argv[1:] == ["--selftest"]:
        return selftest()
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    found = leftovers(argv[1])
    for pid, cmd in found:
        print(f"left running by the tests: pid {pid}: {cmd}", file=sys.stderr)
        if "--kill" in argv[2:]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    if not found:
        print("no process started by the tests is left running")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
