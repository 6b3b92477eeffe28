"""Command line: ``python -m fastmlp {demo,train,predict,bench}``, the same as the ``fastmlp``
command that installing the package creates; see ``fastmlp._cli``."""
import sys

from ._cli import demo, main

__all__ = ["demo", "main"]

if __name__ == "__main__":
    sys.exit(main())
