"""The scripted fake agent the worker tests run (its behaviour comes from the task's
description; see ``tascade_worker.fake_agent``)."""

import sys

from tascade_worker.fake_agent import main

if __name__ == "__main__":
    sys.exit(main())
