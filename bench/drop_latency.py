#!/usr/bin/env python3
"""Drop-to-visible latency of `herald serve`.

Starts herald (release build) on a temporary site with `debounce_ms` as
given, optionally pre-filled with N announcements, then renames new files
into the watch folder one at a time and polls the feed over HTTP until each
appears. Prints the median and p99 latency in milliseconds.

    cargo build --release
    python3 bench/drop_latency.py --drops 50 --debounce-ms 100 [--prefill 10000 | --corpus DIR] [--after-write]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANGS = {
    "en": "The city council announces road works on Main Street from Monday, with buses diverted via the station.",
    "de": "Die Stadtverwaltung kündigt ab Montag Bauarbeiten in der Hauptstraße an; die Busse fahren über den Bahnhof.",
    "pl": "Urząd miasta zapowiada od poniedziałku roboty drogowe na ulicy Głównej, autobusy pojadą objazdem.",
    "uk": "Міська рада повідомляє про ремонт дороги на головній вулиці з понеділка, автобуси їздитимуть в об'їзд.",
    "fr": "La mairie annonce des travaux rue Principale à partir de lundi ; les bus seront déviés par la gare.",
}


def write_announcement(path, i, lang):
    body = LANGS[lang]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"Announcement {i}\n\n" + ("\n".join([body] * 12)) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drops", type=int, default=50)
    ap.add_argument("--debounce-ms", type=int, default=100)
    ap.add_argument("--prefill", type=int, default=0)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/herald"))
    ap.add_argument("--gap-ms", type=int, help="pause after each drop is visible (default: two debounce periods)")
    ap.add_argument("--log", help="copy herald's log here (RUST_LOG applies)")
    ap.add_argument("--after-write", action="store_true",
                    help="drop only once the first write of the feeds folder has ended (steady state)")
    ap.add_argument("--corpus", help="watch this existing folder instead of a generated one "
                    "(e.g. bench/e2e.py's corpus); the drops are removed from it afterwards")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        watch = os.path.abspath(args.corpus) if args.corpus else os.path.join(tmp, "watch")
        os.makedirs(watch, exist_ok=True)
        langs = list(LANGS)
        for i in range(0 if args.corpus else args.prefill):
            write_announcement(os.path.join(watch, f"old-{i:06}.txt"), i, langs[i % len(langs)])
        with open(os.path.join(tmp, "config.toml"), "w") as f:
            f.write(
                "[site]\ntitle = \"Bench\"\ndefault_language = \"en\"\n"
                f"[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n"
                f"[paths]\nwatch = \"{watch}\"\n"
                f"[watch]\ndebounce_ms = {args.debounce_ms}\n"
            )
        t0 = time.time()
        proc = subprocess.Popen(
            [args.binary, "--config", os.path.join(tmp, "config.toml"), "serve"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        addr = None
        early = []
        for line in proc.stderr:
            early.append(f"{time.time() - t0:9.3f} {line}")
            m = re.search(r"listening addr=(\S+)", line)
            if m:
                addr = m.group(1)
                break
        if not addr:
            sys.exit("herald did not start")
        print(f"started with {args.corpus or args.prefill} announcements in {time.time() - t0:.2f} s", flush=True)
        # Drained (a full pipe would block herald's logging); notes when
        # the first write of the feeds folder ends, which on a first start
        # runs while the drops below are published.
        written = []

        def drain():
            log = open(args.log, "w") if args.log else None
            if log:
                log.writelines(early)
            for line in proc.stderr:
                if log:
                    log.write(f"{time.time() - t0:9.3f} {line}")
                if "feeds folder up to date" in line and not written:
                    written.append(time.time() - t0)

        threading.Thread(target=drain, daemon=True).start()
        if args.after_write:
            while not written:
                if proc.poll() is not None:
                    sys.exit("herald stopped before the feeds folder was written")
                time.sleep(0.2)
            print(f"feeds folder written {written[0]:.1f} s after start; dropping now", flush=True)
        url = f"http://{addr}/atom.xml"
        latencies = []
        try:
            for n in range(args.drops):
                title = f"Fresh drop {n} {time.time_ns()}"
                staging = os.path.join(tmp, "staging.txt")
                with open(staging, "w", encoding="utf-8") as f:
                    f.write(f"{title}\n\n{LANGS['en']}\n")
                start = time.perf_counter()
                os.rename(staging, os.path.join(watch, f"drop-{n}.txt"))
                while True:
                    with urllib.request.urlopen(url) as r:
                        if title.encode() in r.read():
                            break
                    time.sleep(0.002)
                    if time.perf_counter() - start > 10:
                        sys.exit(f"drop {n} not visible after 10 s")
                latencies.append((time.perf_counter() - start) * 1000)
                gap = args.gap_ms if args.gap_ms is not None else 2 * args.debounce_ms
                time.sleep(gap / 1000)
            drops_ended = time.time()
        finally:
            # Also when a drop never shows: no herald left running, and
            # the temporary folder is not removed under its feet.
            proc.terminate()
            proc.wait(timeout=60)
            if args.corpus:
                for n in range(args.drops):
                    try:
                        os.remove(os.path.join(watch, f"drop-{n}.txt"))
                    except FileNotFoundError:
                        pass
        slowest = sorted(range(len(latencies)), key=lambda i: -latencies[i])[:5]
        print("slowest (drop: ms): " + ", ".join(f"{i}: {latencies[i]:.0f}" for i in slowest))
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"drops={len(latencies)} debounce_ms={args.debounce_ms} prefill={args.prefill} "
              f"median_ms={statistics.median(latencies):.1f} p99_ms={p99:.1f} max_ms={latencies[-1]:.1f}")
        if written:
            print(f"feeds folder written {written[0]:.1f} s after start "
                  f"(drops ended {drops_ended - t0:.1f} s after start)")
        else:
            print(f"feeds folder still being written when the drops ended "
                  f"({drops_ended - t0:.1f} s after start)")


if __name__ == "__main__":
    main()
