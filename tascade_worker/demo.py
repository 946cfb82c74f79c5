"""The whole flow in a minute: ``python -m tascade_worker.demo`` (or ``make demo``).

It starts a throwaway Tascade server (SQLite in a temporary directory), makes a scratch git
repository, puts in a plan of ten tasks with dependencies (one of which the agent splits in
two), runs the worker pool with the scripted fake agent, approves each implemented task as a
separate reviewer, lets the integrator merge the approved work, and prints the final states
and the integration branch's history. Run it from a Tascade checkout (it needs manage.py).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tascade_client import TascadeClient, TascadeError
from tascade_worker.config import IntegrateConfig, WorkConfig
from tascade_worker.integrator import Integrator
from tascade_worker.runner import Runner

ROOT = Path(__file__).resolve().parent.parent
CHECK = """\
import importlib, pathlib, sys
sys.path.insert(0, ".")
for path in sorted(pathlib.Path("calc").glob("*.py")):
    importlib.import_module("calc." + path.stem if path.stem != "__init__" else "calc")
print("calc imports cleanly")
"""


def _module(name: str, body: str) -> dict:
    return {"write": {f"calc/{name}.py": body}, "sleep": 0.3}


PLAN = [
    # key, title, script for the fake agent, prerequisites
    ("pkg", "Package skeleton", {"write": {"calc/__init__.py": '"""A tiny calculator."""\n'}}, []),
    ("add", "add()", _module("add", "def add(a, b):\n    return a + b\n"), ["pkg"]),
    ("sub", "sub()", _module("sub", "def sub(a, b):\n    return a - b\n"), ["pkg"]),
    ("mul", "mul()", _module("mul", "def mul(a, b):\n    return a * b\n"), ["pkg"]),
    ("div", "div()", _module("div", "def div(a, b):\n    return a / b\n"), ["pkg"]),
    (
        "cli",
        "Command line",
        _module(
            "cli",
            "from calc.add import add\nfrom calc.div import div\nfrom calc.mul import mul\n"
            "from calc.sub import sub\n\nOPS = {'+': add, '-': sub, '*': mul, '/': div}\n",
        ),
        ["add", "sub", "mul", "div"],
    ),
    ("usage", "Usage in the README", {"append": {"README.md": "\nUsage: calc 1 + 2\n"}}, ["cli"]),
    (
        "docs",
        "Documentation (the agent splits it)",
        {
            "delegate": [
                {
                    "key": "intro",
                    "title": "Docs: introduction",
                    "description": json.dumps({"write": {"docs/intro.md": "# calc\n"}}),
                },
                {
                    "key": "ref",
                    "title": "Docs: reference",
                    "depends_on": ["intro"],
                    "description": json.dumps({"write": {"docs/reference.md": "add sub\n"}}),
                },
            ]
        },
        ["pkg"],
    ),
    ("version", "Version number", _module("version", "VERSION = '0.1.0'\n"), ["pkg"]),
    ("log", "Changelog", {"write": {"CHANGELOG.md": "0.1.0: first\n"}}, ["version"]),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _key(env: dict[str, str], actor: str, roles: str) -> str:
    return (
        _manage(env, "create_api_key", "--actor", actor, "--roles", roles).strip().splitlines()[-1]
    )


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def _scratch_repo(path: Path) -> None:
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# calc\n")
    (path / "check.py").write_text(CHECK)
    (path / ".gitignore").write_text("__pycache__/\n")
    _git(path, "add", ".")
    _git(
        path,
        "-c",
        "user.name=demo",
        "-c",
        "user.email=demo@example.invalid",
        "commit",
        "-qm",
        "Scratch repository",
    )


def _wait_for_server(url: str, key: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    with TascadeClient(url, key, timeout=2) as client:
        while True:
            try:
                client.whoami()
                return
            except TascadeError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("The demo server did not start.") from None
                time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--concurrency", type=int, default=3)
    args = parser.parse_args(argv)
    if not (ROOT / "manage.py").exists():
        raise SystemExit("Run the demo from a Tascade checkout (manage.py not found).")

    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="tascade-demo-"))
    env = {
        **os.environ,
        "TASCADE_DATABASE_URL": f"sqlite:///{scratch / 'tascade.sqlite3'}",
        "TASCADE_VAR_DIR": str(scratch / "var"),
        "TASCADE_LOG_LEVEL": "WARNING",
        "TASCADE_API_KEY_CACHE_SECONDS": "60",
    }
    print(f"Scratch directory: {scratch}")
    print("Setting up a throwaway server (SQLite) and four keys …", flush=True)
    _manage(env, "migrate", "--verbosity", "0")
    keys = {
        "planner": _key(env, "planner-1", "planner"),
        "agent": _key(env, "worker-1", "agent"),
        "reviewer": _key(env, "reviewer-1", "reviewer"),
        "operator": _key(env, "integrator-1", "operator"),
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(scratch / "server.log").open("w"),
    )
    try:
        _wait_for_server(url, keys["planner"], server)
        return _run(url, keys, scratch, args, started)
    finally:
        server.terminate()
        server.wait(timeout=10)
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"Kept {scratch} (repository in repo/, logs under repo/.git/tascade/logs/)")


def _run(url: str, keys: dict[str, str], scratch: Path, args, started: float) -> int:
    repo = scratch / "repo"
    _scratch_repo(repo)
    planner = TascadeClient(url, keys["planner"])
    project = planner.create_project("Calculator demo", slug="calc", lease_ttl_seconds=30)
    ids = {}
    for key, title, script, _prerequisites in PLAN:
        ids[key] = planner.create_task(project.id, title, description=json.dumps(script)).id
    for key, _title, _script, prerequisites in PLAN:
        for prerequisite in prerequisites:
            planner.add_dependency(project.id, ids[prerequisite], ids[key])
    print(f"Plan: {len(PLAN)} tasks in project {project.slug}; server {url}\n", flush=True)

    stop = threading.Event()
    agent = f"{sys.executable} -m tascade_worker.fake_agent"
    runner = Runner(
        url=url,
        api_key=keys["agent"],
        project=project.id,
        repo=repo,
        config=WorkConfig(
            agent=agent,
            validate=(f"{sys.executable} check.py",),
            base_ref="main",
            concurrency=args.concurrency,
            max_duration=60,
            poll_interval=0.3,
        ),
        stop=stop,
        out=sys.stdout,
    )
    integrator = Integrator(
        url=url,
        api_key=keys["operator"],
        project=project.id,
        repo=repo,
        config=IntegrateConfig(
            base_ref="main", validate=(f"{sys.executable} check.py",), poll_interval=0.3
        ),
        stop=stop,
        out=sys.stdout,
    )
    threads = [
        threading.Thread(target=runner.run, name="runner"),
        threading.Thread(target=integrator.run, name="integrator"),
    ]
    for thread in threads:
        thread.start()
    reviewer = TascadeClient(url, keys["reviewer"])
    final = {"integrated", "blocked", "conflict", "abandoned", "cancelled"}
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            for task in reviewer.review_queue(project.id):
                reviewer.record_review(task.id, "approved", "Looks right (demo reviewer).")
                print(f"[{time.strftime('%H:%M:%S')}] {task.ref}: approved by reviewer-1")
            tasks = list(reviewer.tasks(project.id))
            if tasks and all(t.state in final for t in tasks):
                break
            time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    tasks = list(reviewer.tasks(project.id))
    print("\nFinal state:")
    refs = {t.id: t.ref for t in tasks}
    for task in tasks:
        parent = f" (split from {refs[task.parent]})" if task.parent in refs else ""
        print(f"  {task.ref:<4} {task.state:<11} {task.title}{parent}")
    print("\ngit log --graph of tascade/integration:")
    print(_git(repo, "log", "--graph", "--oneline", "--decorate=short", "tascade/integration"))
    ok = all(t.state == "integrated" for t in tasks)
    print(
        f"{'All' if ok else 'Not all'} {len(tasks)} tasks integrated in "
        f"{time.monotonic() - started:.0f}s ({runner.summary.line()}; "
        f"integrator: {integrator.summary.line()})."
    )
    planner.close()
    reviewer.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
