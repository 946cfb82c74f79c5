import sys

from tascade_client.cli import main

sys.exit(main())
