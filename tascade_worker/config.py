"""The runner's and the integrator's settings: defaults, then the repository's
``.tascade/worker.toml``, then the command line (each overrides the one before).

    # .tascade/worker.toml
    [work]
    agent = "claude -p \\"$(cat $TASCADE_CONTEXT_FILE)\\""
    validate = ["python -m pytest -q"]
    base_ref = "main"
    branch_prefix = "tascade/"
    max_duration = 1800        # seconds an agent may run
    validate_timeout = 900     # seconds each validation command may run
    concurrency = 2
    capabilities = ["python"]
    max_failures = 5           # consecutive failed tasks before the runner stops
    keep_logs = 200            # task log directories kept

    [integrate]
    branch = "tascade/integration"
    base_ref = "main"
    validate = ["python -m pytest -q"]
    validate_timeout = 900
    enqueue = true             # enqueue approved work found implemented
"""

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

CONFIG_FILE = Path(".tascade") / "worker.toml"


class ConfigError(Exception):
    """A setting is missing or has the wrong type."""


@dataclass(frozen=True)
class WorkConfig:
    agent: str = ""
    validate: tuple[str, ...] = ()
    base_ref: str = "HEAD"
    branch_prefix: str = "tascade/"
    max_duration: float = 1800.0
    validate_timeout: float = 900.0
    concurrency: int = 1
    capabilities: tuple[str, ...] | None = None  # None: any task
    max_failures: int = 5
    keep_logs: int = 200
    poll_interval: float = 2.0
    heartbeat_interval: float | None = None  # None: a third of the lease's TTL
    until_idle: bool = False
    work_dir: Path | None = None  # None: <git common dir>/tascade


@dataclass(frozen=True)
class IntegrateConfig:
    branch: str = "tascade/integration"
    base_ref: str = "HEAD"
    validate: tuple[str, ...] = ()
    validate_timeout: float = 900.0
    enqueue: bool = True
    poll_interval: float = 2.0
    until_idle: bool = False
    work_dir: Path | None = None


_TYPES = {
    "validate": tuple,
    "capabilities": tuple,
    "work_dir": Path,
}


def _coerce(cls: type, section: str, values: dict[str, Any]) -> dict[str, Any]:
    known = {f.name: f for f in fields(cls)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"[{section}] {key}: unknown setting.")
        default = getattr(cls(), name)
        try:
            if name in _TYPES:
                if _TYPES[name] is tuple:
                    if isinstance(value, str) or not isinstance(value, list):
                        raise TypeError("a list of strings")
                    value = tuple(str(v) for v in value)
                else:
                    value = Path(value)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise TypeError("true or false")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise TypeError("a whole number, 0 or more")
            elif isinstance(default, float) or name == "heartbeat_interval":
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise TypeError("a number of seconds above 0")
                value = float(value)
            elif isinstance(default, str) and not isinstance(value, str):
                raise TypeError("a string")
        except TypeError as exc:
            raise ConfigError(f"[{section}] {key}: expected {exc}, got {value!r}.") from None
        out[name] = value
    return out


def read_file(repo: Path) -> dict[str, Any]:
    path = repo / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load(cls: type, section: str, repo: Path, overrides: dict[str, Any]):
    """Defaults < the file's ``[section]`` < the non-None ``overrides``."""
    table = read_file(repo).get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{section}] must be a table.")
    config = replace(cls(), **_coerce(cls, section, table))
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(config, **given)


__all__ = ["CONFIG_FILE", "ConfigError", "IntegrateConfig", "WorkConfig", "load"]
