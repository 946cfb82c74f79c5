"""A scripted agent for demos and tests: it does what the task's description says.

The description holds a JSON object (anything else: the agent writes a note file and exits 0):

    {"write": {"path": "content", …}}    write files (relative to the worktree)
    {"append": {"path": "content", …}}   append to files
    {"sleep": 0.5}                       wait first
    {"exit": 3}                          fail with this exit code (after writing)
    {"hang": true, "pidfile": "/abs"}    start a child that sleeps, record both pids, never end
    {"commit": "message"}                commit the changes itself (the runner adds the rest)
    {"delegate": [{"key", "title", "depends_on", "description"…}, …]}
                                         split the task with `tascade delegate --file …`

Run as ``python -m tascade_worker.fake_agent`` by the runner (see docs/worker.md).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    context = json.loads(Path(os.environ["TASCADE_CONTEXT_FILE"]).read_text())
    task = context["task"]
    try:
        script = json.loads(task.get("description") or "")
    except ValueError:
        script = None
    if not isinstance(script, dict):
        script = {"write": {f"notes/{task['ref']}.md": f"# {task['title']}\n"}}
    print(f"fake agent on {task['ref']} ({task['title']}): {sorted(script)}", flush=True)
    time.sleep(float(script.get("sleep", 0)))
    for path, content in (script.get("write") or {}).items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    for path, content in (script.get("append") or {}).items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with Path(path).open("a") as f:
            f.write(content)
    if script.get("commit"):
        subprocess.run(["git", "add", "--all", "--", ".", ":(exclude).tascade"], check=True)
        subprocess.run(
            [
                "git",
                "-c",
                "user.name=fake",
                "-c",
                "user.email=fake@example.invalid",
                "commit",
                "-q",
                "-m",
                str(script["commit"]),
            ],
            check=True,
        )
    if script.get("delegate"):
        children = Path(os.environ["TASCADE_CONTEXT_FILE"]).with_name("children.json")
        children.write_text(json.dumps({"children": script["delegate"], "reason": "too big"}))
        done = subprocess.run(
            [sys.executable, "-m", "tascade_client", "delegate", "--file", str(children)],
            check=False,
        )
        return done.returncode
    if script.get("hang"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        if script.get("pidfile"):
            Path(script["pidfile"]).write_text(f"{os.getpid()} {child.pid}\n")
        print("hanging", flush=True)
        time.sleep(3600)
    code = int(script.get("exit", 0))
    if code:
        print(f"failing with exit code {code}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
