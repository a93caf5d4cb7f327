#!/usr/bin/env python3
"""Differential test (issue 18): cpis's NhsNumber::parse against an
independent implementation, the PyPI package `nhs-number` (is_valid, no
region), over a generated corpus: edge cases (placeholders, shapes,
whitespace, other scripts' digits, check digit 10, every range boundary of
nhs_number.constants) and random numbers in every range, each with its right
check digit, a wrong one, and spaced and dashed forms.

Every disagreement must be of a kind listed, with its reason, in
tests/fixtures/nhs_number_disagreements.json; every listed kind must still
occur, and its examples must disagree as stated. Prints counts only: the
random corpus lies in real allocation ranges and is never printed or written.

Usage: nhs_number_differential.py VERDICTS-COMMAND...  (a command that reads
one candidate a line and prints `valid` or the error's name a line, e.g.
`cargo run -q -p cpis-domain --example nhs_verdicts`)
"""

import json
import os
import random
import string
import subprocess
import sys

import nhs_number
from nhs_number import constants

ROOT = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(ROOT, "fixtures", "nhs_number_disagreements.json")
RANDOM_PER_RANGE = 300


def check_digit(nine):
    total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1)))
    c = 11 - total % 11
    return 0 if c == 11 else c


def with_check(nine):
    """The ten digits, or None when the check digit would be 10."""
    c = check_digit(nine)
    return None if c == 10 else nine + str(c)


def forms(ten):
    return [ten, f"{ten[:3]} {ten[3:6]} {ten[6:]}", f"{ten[:3]}-{ten[3:6]}-{ten[6:]}"]


def ranges():
    return [v for v in vars(constants).values() if isinstance(v, constants.Range)]


def expand(example):
    """A fixture example: text as written, or `{"stem": nine digits}` for a
    ten-digit number outside the synthetic range, completed here with its
    check digit (the repository holds no such number written out)."""
    return with_check(example["stem"]) if isinstance(example, dict) else example


def corpus(rng):
    items = []
    # Placeholders and the synthetic examples.
    for d in string.digits:
        items += forms(d * 10)
    for ten in ["9990000018", "9990000026", "9999999123"]:
        items += forms(ten)
        items += [" " + ten, ten + " ", ten + "\t", ten[:9], ten + "0", ten[:3] + "  " + ten[3:]]
        items += ["".join(chr(0x0660 + int(c)) for c in ten), "".join(chr(0xFF10 + int(c)) for c in ten)]
        items += [ten[:5] + " " + ten[5:], ten[:3] + "." + ten[3:6] + "." + ten[6:], ten.replace("0", "O", 1)]
    items += ["", " ", "abcdefghij", "12345678901234567890", "-999000001", "+999000018"]
    # Every wrong check digit of one number, and numbers whose check digit is 10.
    items += ["999000001" + str(d) for d in range(10)]
    tens = [n for n in (f"{rng.randrange(10**9):09d}" for _ in range(2000)) if check_digit(n) == 10][:30]
    items += [n + str(rng.randrange(10)) for n in tens]
    # Range boundaries (as the package draws them), each side.
    for r in ranges():
        for edge in (r.start - 1, r.start, r.end, r.end + 1):
            if 0 <= edge < 10**10:
                items.append(f"{edge:010d}")
                nine = f"{edge:010d}"[:9]
                ten = with_check(nine)
                if ten:
                    items += forms(ten)
    # Random numbers in every range, right and wrong check digits.
    for r in ranges():
        lo, hi = r.start // 10, r.end // 10
        for _ in range(RANDOM_PER_RANGE):
            nine = f"{rng.randint(lo, hi):09d}"
            ten = with_check(nine)
            if ten:
                items += forms(ten)
                wrong = (int(ten[9]) + rng.randint(1, 9)) % 10
                items.append(ten[:9] + str(wrong))
    # Random numbers anywhere.
    for _ in range(3000):
        items.append(f"{rng.randrange(10**10):010d}")
    assert not any("\n" in i or "\r" in i for i in items)
    return items


def kind_of(text, python, cpis):
    stripped = text.strip()
    if python and cpis == "Placeholder":
        return "placeholder"
    if python and cpis == "WrongShape":
        if any(c.isdigit() and not c.isascii() for c in text):
            return "non-ASCII digits"
        if stripped != text:
            return "surrounding whitespace"
        if len(text) == 12 and text[3] == "-" and text[7] == "-":
            return "dashed 3-3-4"
    if not python and cpis == "valid" and constants.REGION_SCOTLAND.contains_number(text.replace(" ", "")):
        return "CHI number with an impossible date"
    return None


def verdicts(command, items):
    run = subprocess.run(command, input="\n".join(items) + "\n", capture_output=True,
                         text=True, check=True)
    lines = run.stdout.splitlines()
    if len(lines) != len(items):
        raise SystemExit(f"the verdicts command gave {len(lines)} verdicts for {len(items)} inputs")
    return lines


def main():
    command = sys.argv[1:]
    if not command:
        raise SystemExit(__doc__)
    with open(FIXTURE, encoding="utf-8") as f:
        listed = {k["kind"]: k for k in json.load(f)["kinds"]}
    items = corpus(random.Random(18))
    examples = [(k, expand(e)) for k in listed.values() for e in k["examples"]]
    ours = verdicts(command, items + [e for _, e in examples])
    ours, ours_examples = ours[: len(items)], ours[len(items):]

    failures = []
    for (kind, example), cpis in zip(examples, ours_examples):
        python = nhs_number.is_valid(example)
        if (python, cpis) != (kind["python"], kind["cpis"]) or kind_of(example, python, cpis) != kind["kind"]:
            failures.append(f"the example of '{kind['kind']}' does not disagree as the fixture says")

    seen = {}
    unexplained = 0
    valid = 0
    for text, cpis in zip(items, ours):
        python = nhs_number.is_valid(text)
        valid += cpis == "valid"
        if python == (cpis == "valid"):
            continue
        kind = kind_of(text, python, cpis)
        if kind in listed and (python, cpis) == (listed[kind]["python"], listed[kind]["cpis"]):
            seen[kind] = seen.get(kind, 0) + 1
        else:
            unexplained += 1
            # Never the input: its shape only.
            shape = "".join("9" if c.isdigit() else c for c in text)
            failures.append(f"unexplained: nhs-number {python}, cpis {cpis}, input shaped {shape!r}")
    for kind in listed:
        if kind not in seen:
            failures.append(f"the fixture lists '{kind}' but the corpus never produced it")

    agreed = len(items) - sum(seen.values()) - unexplained
    print(f"NHS number differential: {len(items):,} inputs ({valid:,} valid to cpis), "
          f"{agreed:,} agreed with nhs-number {nhs_number_version()}; listed disagreements: "
          + ", ".join(f"{k} {n}" for k, n in sorted(seen.items())))
    if failures:
        print("NHS number differential FAILED:\n  " + "\n  ".join(failures[:50]))
        return 1
    return 0


def nhs_number_version():
    try:
        from importlib.metadata import version
        return version("nhs-number")
    except Exception:  # pragma: no cover - metadata missing
        return "?"


if __name__ == "__main__":
    sys.exit(main())
