#!/usr/bin/env python3
"""One line about an ivr log for the benches: how many WARN and ERROR lines, the most frequent
kinds (message text without fields), and for "media task woke late" the packet slots skipped.

Usage: log_summary.py LABEL IVR_LOG
"""
import collections
import re
import sys

label, path = sys.argv[1], sys.argv[2]
kinds = collections.Counter()
levels = collections.Counter()
slots = 0
for line in open(path, errors="replace"):
    m = re.match(r"\S+\s+(WARN|ERROR)\s+(.*)", line)
    if not m:
        continue
    level, rest = m.groups()
    levels[level] += 1
    # "target: message key=value ..." -> "LEVEL target: message"; span fields dropped.
    rest = re.sub(r"^\S+\{.*?\}:\s*", "", rest)
    text = re.split(r"\s\w+=", rest, maxsplit=1)[0]
    kinds[f"{level} {text}"] += 1
    if "media task woke late" in rest:
        s = re.search(r"skipped=(\d+)", rest)
        slots += int(s.group(1)) if s else 0
top = "; ".join(f"{n} x {k}" for k, n in kinds.most_common(4))
extra = f" ({slots} packet slots skipped in all)" if slots else ""
print(f"{label}: {levels['WARN']} WARN, {levels['ERROR']} ERROR lines{': ' + top if top else ''}{extra}")
