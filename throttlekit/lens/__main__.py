"""``python -m throttlekit.lens --link-fd N``: the dashboard process ``throttlekit-server --tui`` starts
on its terminal (see ``_link.py``). Exit 0 asks the server to stop; SIGTERM closes the dashboard only."""

from __future__ import annotations

import argparse
import os
import sys

#: How much lower than the server the dashboard process runs (``nice``): frames wait, decisions do not.
NICENESS = 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m throttlekit.lens", description=__doc__)
    parser.add_argument("--link-fd", type=int, required=True, help="the server's end of the link (inherited)")
    args = parser.parse_args(argv)
    try:  # a best-effort observer: under contention the server's decisions get the CPU first
        os.nice(NICENESS)
    except OSError:
        pass
    from ._app import LensApp, LensSource
    from ._link import LinkClient

    link = LinkClient(args.link_fd)
    app = LensApp(LensSource.over_link(link), exit_on_sigterm=True)
    try:
        app.run()
    finally:
        link.close()
    if app.return_code == 4:  # the server's end closed: it is gone, there is no one to stop
        return 4
    return 3 if app.terminated else 0


if __name__ == "__main__":
    sys.exit(main())
