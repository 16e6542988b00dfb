"""Launch ``throttlekit-server`` for the fleet test: ``python fleet_server.py serve -c ... --postgres-url ...``
(the console script may not be on PATH in every environment; the interpreter running the tests is)."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from throttlekit.cli import server_main

    sys.exit(server_main(sys.argv[1:]))
