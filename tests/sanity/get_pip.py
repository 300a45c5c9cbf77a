"""Stands in for the get-pip.py script ansible-test downloads to put pip into its sanity virtualenvs.

ansible-test fetches that script from a host outside the package registries. The Makefile copies
this one into ansible-test's cache in its place, beside the pip wheel it took from PyPI: pip runs
from that wheel and installs itself and the packages ansible-test asks for.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    versions = [arg.split("==", 1)[1] for arg in sys.argv[1:] if arg.startswith("pip==")]
    wheel = os.path.join(here, "pip-%s-py3-none-any.whl" % (versions[0] if versions else ""))
    if not os.path.isfile(wheel):
        sys.stderr.write("no pip wheel for %s at %s\n" % (versions, wheel))
        return 1
    sys.path.insert(0, wheel)
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    # get-pip.py's own flags: nothing is added implicitly here, so they only need dropping.
    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    return pip_main(["install", "--upgrade", "--force-reinstall", *args])


if __name__ == "__main__":
    sys.exit(main())
