"""Print the installed tfaas's own requirements (not its extras') for pip, one per line, with
TensorFlow as the distribution named by the argument: ``python requirements.py tensorflow-cpu``;
with ``--no-deps`` first, only those to install without their own requirements.

NOTE: pip does not count ``tensorflow-cpu`` (TF's CPU-only wheel, the image's) as the ``tensorflow``
that setup.py and ``tensorflow-serving-api`` require, and would install both: so tfaas and
``tensorflow-serving-api`` go in with ``--no-deps`` (its other requirements, grpcio and protobuf, come
with TensorFlow and tfaas), and the rest as printed here.
"""

import re
import sys
from importlib.metadata import requires

NO_DEPS = ("tensorflow-serving-api",)


def main(args: list[str]) -> None:
    no_deps = args[0] == "--no-deps"
    tensorflow = args[-1]
    for requirement in requires("tfaas") or []:
        if "extra ==" in requirement:  # NOTE: the extras' ([test]): not the image's
            continue
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
        if (name in NO_DEPS) == no_deps:
            print(re.sub(r"^tensorflow(?=[^A-Za-z0-9_.-]|$)", tensorflow, requirement).replace(" ", ""))


if __name__ == "__main__":
    main(sys.argv[1:])
