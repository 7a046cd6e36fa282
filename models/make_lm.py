#!/usr/bin/env python3
"""Build a small ARPA bigram language model for PocketSphinx from a text corpus.

    models/make_lm.py models/it-support-corpus.txt /usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict models/it-support.lm

One sentence per line. Words are lower-cased and stripped of punctuation; words the
pronunciation dictionary lacks are dropped (PocketSphinx could not use them). Bigram
probabilities use absolute discounting (D = 0.5) with back-off to add-one unigrams, so every
word of the corpus can follow any other. Standard library only; the output is deterministic.
"""
import collections
import math
import re
import sys

DISCOUNT = 0.5


def words(line):
    return re.sub(r"[^a-z' ]", " ", line.lower()).split()


def main(corpus, dict_file, out):
    known = set()
    with open(dict_file, encoding="utf-8") as f:
        for line in f:
            known.add(re.sub(r"\(\d+\)$", "", line.split(" ", 1)[0]))
    sentences, dropped = [], set()
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            ws = words(line)
            dropped.update(w for w in ws if w not in known)
            ws = [w for w in ws if w in known]
            if ws:
                sentences.append(["<s>"] + ws + ["</s>"])
    if dropped:
        print(f"dropped (not in the dictionary): {' '.join(sorted(dropped))}", file=sys.stderr)
    uni, bi = collections.Counter(), collections.Counter()
    for s in sentences:
        uni.update(s)
        bi.update(zip(s, s[1:]))
    vocab = sorted(uni)
    total = sum(c for w, c in uni.items() if w != "<s>")
    p1 = {w: (uni[w] + 1) / (total + len(vocab)) for w in vocab}
    p1["<s>"] = 0.0  # never predicted; only a history
    follow = collections.defaultdict(dict)
    for (a, b), c in bi.items():
        follow[a][b] = c
    p2, backoff = {}, {}
    for a in vocab:
        seen = follow.get(a, {})
        n = sum(seen.values())
        if n == 0:
            backoff[a] = 1.0
            continue
        for b, c in seen.items():
            p2[(a, b)] = (c - DISCOUNT) / n
        left = DISCOUNT * len(seen) / n  # mass taken from seen bigrams...
        unseen = 1.0 - sum(p1[b] for b in seen)  # ...spread over unseen words' unigrams
        backoff[a] = left / unseen if unseen > 0 else 1.0

    def log10(p):
        return -99.0 if p <= 0 else math.log10(p)

    with open(out, "w", encoding="utf-8") as o:
        o.write(f"\\data\\\nngram 1={len(vocab)}\nngram 2={len(p2)}\n\n\\1-grams:\n")
        for w in vocab:
            o.write(f"{log10(p1[w]):.4f} {w} {log10(backoff[w]):.4f}\n")
        o.write("\n\\2-grams:\n")
        for (a, b), p in sorted(p2.items()):
            o.write(f"{log10(p):.4f} {a} {b}\n")
        o.write("\n\\end\\\n")
    print(f"{out}: {len(vocab)} words, {len(p2)} bigrams from {len(sentences)} sentences", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
