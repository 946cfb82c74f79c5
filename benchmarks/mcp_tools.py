"""Print the size of the MCP tool list an agent loads: characters of the tool definitions'
JSON as a client lists them, and the estimated tokens (4 characters per token).

    .venv/bin/python benchmarks/mcp_tools.py [--per-tool]
"""

import argparse
import json
import os
import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-tool", action="store_true", help="also print each tool's size")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tascade.settings")
    import django

    django.setup()
    from tascade.mcp.server import CHARS_PER_TOKEN, listed_tools

    tools = anyio.run(listed_tools)
    chars = len(json.dumps(tools))
    print(f"{len(tools)} tools, {chars} characters, ~{chars // CHARS_PER_TOKEN} tokens")
    if args.per_tool:
        for tool in sorted(tools, key=lambda t: -len(json.dumps(t))):
            size = len(json.dumps(tool))
            print(f"  {tool['name']:<20} {size:>6} chars  ~{size // CHARS_PER_TOKEN:>5} tokens")


if __name__ == "__main__":
    main()
