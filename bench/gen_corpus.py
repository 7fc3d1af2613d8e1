#!/usr/bin/env python3
"""Generates N announcements like real input, for benchmarks.

Deterministic (seeded). Each file is 1.5-4 KB of one language, recombined
from the evaluation texts in tests/fixtures/lang_samples.json (38
languages); forms are mixed like a city's real folder: plain text with a
headline, Markdown with YAML front matter (title, date, sometimes lang and
tags), and a share in legacy encodings (windows-1251 / KOI8-U for Cyrillic,
windows-1250 for Central European, windows-1253 for Greek). Files spread
over year/month folders; dates span the last ten years.

    python3 bench/gen_corpus.py N OUT_DIR [--hugo HUGO_CONTENT_DIR]

With --hugo, the same announcements are also written as UTF-8 Markdown
pages for a Hugo site (title, date), so that both read the same texts.
"""
import argparse
import datetime
import json
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEGACY = {
    "uk": ["windows-1251", "koi8-u"],
    "ru": ["windows-1251", "koi8-r"],
    "bg": ["windows-1251"],
    "be": ["windows-1251"],
    "pl": ["windows-1250"],
    "cs": ["windows-1250"],
    "sk": ["windows-1250"],
    "hu": ["windows-1250"],
    "sl": ["windows-1250"],
    "hr": ["windows-1250"],
    "el": ["windows-1253"],
    "de": ["windows-1252"],
    "fr": ["windows-1252"],
}
TAGS = ["transport", "culture", "budget", "Ремонт", "education", "health", "événements"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--hugo")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    samples = json.load(open(os.path.join(ROOT, "tests/fixtures/lang_samples.json")))
    by_lang = {}
    for s in samples:
        by_lang.setdefault(s["lang"], []).append(s["text"])
    langs = sorted(by_lang)
    r = random.Random(args.seed)
    start = datetime.datetime(2016, 1, 1, tzinfo=datetime.timezone.utc)
    span = 10 * 365 * 86400
    for i in range(args.n):
        lang = langs[i % len(langs)]
        parts = by_lang[lang]
        size = r.randint(1500, 4000)
        body, total = [], 0
        while total < size:
            p = r.choice(parts)
            body.append(p)
            total += len(p.encode())
        headline = " ".join(r.choice(parts).split()[:8]).rstrip(".,:;") + f" #{i}"
        date = start + datetime.timedelta(seconds=r.randrange(span))
        folder = os.path.join(args.out, f"{date.year}", f"{date.month:02}")
        os.makedirs(folder, exist_ok=True)
        kind = r.random()
        text = "\n\n".join(body) + "\n"
        if kind < 0.4:
            yaml_title = headline.replace("\\", "").replace('"', "'")
            tags = ", ".join(r.sample(TAGS, 2))
            lang_line = f"lang: {lang}\n" if r.random() < 0.5 else ""
            content = (
                f"---\ntitle: \"{yaml_title}\"\ndate: {date.isoformat()}\n{lang_line}tags: [{tags}]\n---\n{text}"
            )
            name, data = f"a{i:06}.md", content.encode()
        else:
            content = f"{headline}\n\n{text}"
            data = None
            if lang in LEGACY and kind > 0.8:
                enc = r.choice(LEGACY[lang])
                try:
                    data = content.encode(enc)
                except UnicodeEncodeError:
                    data = None
            name, data = f"a{i:06}.txt", data or content.encode()
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        ts = date.timestamp()
        os.utime(path, (ts, ts))
        if args.hugo:
            os.makedirs(args.hugo, exist_ok=True)
            with open(os.path.join(args.hugo, f"a{i:06}.md"), "w", encoding="utf-8") as f:
                title = headline.replace('"', "'")
                f.write(f"---\ntitle: \"{title}\"\ndate: {date.isoformat()}\n---\n{text}")


if __name__ == "__main__":
    main()
