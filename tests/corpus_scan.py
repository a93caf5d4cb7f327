#!/usr/bin/env python3
"""The committed fuzz corpus holds no NHS-number-shaped value outside the
synthetic 999 range (the repository's rule: only synthetic numbers are
committed). A hit is a ten-digit value, in any grouping the privacy scan
knows (tests/privacy_scan.py), or a placeholder with all ten digits the
same, that passes Modulus 11 and does not start with 999.

libFuzzer grows the corpus by changing digits, so a grown input can hold
a valid number outside the range by chance: `--remove` deletes such inputs
(run it after `cargo fuzz cmin`); without it the scan only reports, and
fails on any hit.

Usage: corpus_scan.py [--remove] DIR...
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from privacy_scan import nhs_numbers, passes_modulus_11  # noqa: E402

TEN_DIGITS = re.compile(r"(?<![0-9])[0-9]{10}(?![0-9])")


def hits(text):
    found = [n for n in nhs_numbers(text)]
    # Placeholders pass Modulus 11 too; privacy_scan leaves them out.
    found += [m.group(0) for m in TEN_DIGITS.finditer(text)
              if len(set(m.group(0))) == 1 and passes_modulus_11(m.group(0))]
    digits = ("".join(c for c in n if c.isdigit()) for n in found)
    return [d for d in digits if not d.startswith("999")]


def main(argv):
    remove = "--remove" in argv
    dirs = [a for a in argv if a != "--remove"]
    if not dirs:
        print(__doc__, file=sys.stderr)
        return 2
    files = bad = 0
    for top in dirs:
        for root, _, names in os.walk(top):
            for name in sorted(names):
                path = os.path.join(root, name)
                files += 1
                with open(path, "rb") as f:
                    # One character per byte: digits stay digits.
                    text = f.read().decode("latin-1")
                if hits(text):
                    bad += 1
                    # Counts and paths only: never the value.
                    print(f"{path}: an NHS-number-shaped value outside the 999 range")
                    if remove:
                        os.remove(path)
    verdict = "removed" if remove else "found"
    print(f"corpus scan: {files} files, {bad} {verdict} with a value outside the 999 range")
    return 0 if remove or bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
