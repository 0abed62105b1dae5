#!/usr/bin/env python3
"""Files one GPU check run under bench/results/<date>-<card>-<commit>/ (run here, in the repo).

Usage: file_results.py RUN [--dest bench/results] [--date YYYY-MM-DD] [--card SLUG]
                           [--commit SHA] [--driver VERSION] [--max-kib 64] [--note TEXT]

RUN is the archive scripts/gpucheck/run.sh leaves (gpucheck-<date>-<card>.tar.gz) or a folder
of a run's files (e.g. one copied by hand from a GPU machine). What it files:

- every file of the run up to --max-kib (default 64 KiB) each, at its path in the run: the
  summary, steps table, logs, sanitizer reports, forward table and CSVs, peers, nvidia-smi,
  Nsight Compute summaries; larger files are left out and listed, with their size and where the
  whole run is;
- a CSV next to each markdown file that has none, from its first table, so the tables are also
  machine-readable;
- README.md: card, driver, CUDA, commit, date, the steps table, what was kept and left out.

The date, card, driver and commit come from the run's run-info.txt (run.sh writes it), else from
its nvidia-smi.txt, BUILD_INFO and folder name; the options override them. It refuses to
overwrite an existing folder.
"""
import argparse
import os
import re
import shutil
import sys
import tarfile
import tempfile


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def slug(name):
    s = re.sub(r"nvidia", "", name.lower())
    return re.sub(r"[^a-z0-9]+", "-", s).strip("-")


def run_root(path, tmp):
    """The folder holding the run's files (extracting an archive into tmp)."""
    if os.path.isdir(path):
        return path
    with tarfile.open(path) as t:
        try:
            t.extractall(tmp, filter="data")  # no links or paths outside tmp
        except TypeError:  # a Python without extraction filters
            t.extractall(tmp)
    entries = [e for e in os.listdir(tmp) if not e.startswith(".")]
    if len(entries) == 1 and os.path.isdir(os.path.join(tmp, entries[0])):
        return os.path.join(tmp, entries[0])
    return tmp


def facts(root, args):
    """date, card, driver, cuda, commit, torch of the run (options first)."""
    info = {}
    for line in read(os.path.join(root, "run-info.txt")).splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    smi = read(os.path.join(root, "nvidia-smi.txt"))
    if not info.get("driver"):
        m = re.search(r"Driver Version:\s*([0-9.]+)", smi)
        info["driver"] = m.group(1) if m else ""
    if not info.get("cuda_driver_api"):
        m = re.search(r"CUDA Version:\s*([0-9.]+)", smi)
        info["cuda_driver_api"] = m.group(1) if m else ""
    if not info.get("card"):
        m = re.search(r"\|\s+\d+\s+(NVIDIA [^|]*?)\s{2,}", smi)
        info["card"] = m.group(1).strip() if m else ""
    if not info.get("commit"):
        m = re.search(r"^commit (\S+.*)$", read(os.path.join(root, "BUILD_INFO")), re.M)
        info["commit"] = m.group(1) if m else ""
    if not info.get("date"):
        m = re.search(r"(\d{4}-\d{2}-\d{2})", os.path.basename(os.path.normpath(root)))
        info["date"] = m.group(1) if m else ""
    info["card_slug"] = info.get("card_slug") or slug(info.get("card", ""))
    for key, opt in (("date", args.date), ("card_slug", args.card), ("commit", args.commit),
                     ("driver", args.driver)):
        if opt:
            info[key] = opt
    return info


def folder_name(root, info):
    """<date>-<card>-<commit> (the commit's first 12 hex digits, `-dirty` when the bundle was
    built with uncommitted changes), then `-charts` or `-python` for those modes' runs."""
    parts = [info["date"], info["card_slug"]]
    commit = info.get("commit", "").split()
    if commit and re.fullmatch(r"[0-9a-f]{7,40}", commit[0]):
        parts.append(commit[0][:12] + ("-dirty" if "uncommitted" in info["commit"] else ""))
    base = os.path.basename(os.path.normpath(root))
    parts += [m for m in ("charts", "python") if base.endswith("-" + m)]
    return "-".join(parts)


def md_table_to_csv(text):
    """The first markdown table of `text` as CSV lines, or None."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            cells = [c.strip() for c in line[1:-1].split("|")]
            if all(re.fullmatch(r":?-+:?", c) for c in cells):
                continue
            rows.append(cells)
        elif rows:
            break
    if not rows:
        return None
    quote = lambda c: '"' + c.replace('"', '""') + '"' if ("," in c or '"' in c) else c
    return "\n".join(",".join(quote(c) for c in r) for r in rows) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--dest", default="bench/results")
    ap.add_argument("--date")
    ap.add_argument("--card")
    ap.add_argument("--commit")
    ap.add_argument("--driver")
    ap.add_argument("--max-kib", type=int, default=64)
    ap.add_argument("--note", default="")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = run_root(args.run, tmp)
        info = facts(root, args)
        if not info["date"] or not info["card_slug"]:
            sys.exit("file_results: no date or card found in the run; give --date / --card")
        dest = os.path.join(args.dest, folder_name(root, info))
        if os.path.exists(dest):
            sys.exit(f"file_results: {dest} exists; not overwriting")
        kept, left = [], []
        for dirpath, _, files in os.walk(root):
            for f in sorted(files):
                src = os.path.join(dirpath, f)
                rel = os.path.relpath(src, root)
                size = os.path.getsize(src)
                if size > args.max_kib * 1024:
                    left.append((rel, size))
                    continue
                os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
                shutil.copy2(src, os.path.join(dest, rel))
                os.chmod(os.path.join(dest, rel), 0o644)
                kept.append((rel, size))
        derived = []
        for rel, _ in list(kept):
            if rel.endswith(".md"):
                csv_rel = rel[:-3] + ".csv"
                if any(k == csv_rel for k, _ in kept):
                    continue
                csv = md_table_to_csv(read(os.path.join(dest, rel)))
                if csv:
                    with open(os.path.join(dest, csv_rel), "w") as out:
                        out.write(csv)
                    derived.append((csv_rel, rel))

        lines = [
            f"# GPU check, {info.get('card') or info['card_slug']}, {info['date']}",
            "",
            "| | |",
            "|---|---|",
            f"| card | {info.get('card', '')} |",
            f"| driver | {info.get('driver', '')} (CUDA {info.get('cuda_driver_api', '')}) |",
            f"| commit | {info.get('commit') or 'not recorded'} |",
            f"| nvcc | {info.get('nvcc', '')} |",
            f"| torch | {info.get('torch', '')} |",
            f"| filed from | `{os.path.basename(os.path.normpath(args.run))}` |",
            "",
        ]
        if args.note:
            lines += [args.note, ""]
        steps = read(os.path.join(root, "steps.tsv")).strip().splitlines()
        if steps:
            lines += ["Steps (rc, seconds, limit):", ""]
            head = steps[0].split("\t")
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(r.split("\t")) + " |" for r in steps[1:]]
            lines.append("")
        lines += ["Files kept:", ""] + [f"- `{r}` ({s // 1024 + 1} KiB)" for r, s in kept]
        lines += [f"- `{c}`: derived from the first table in `{m}`" for c, m in derived]
        if left:
            lines += ["", f"Left out (over {args.max_kib} KiB each; in the full run, "
                      f"`{os.path.abspath(args.run)}`):", ""]
            lines += [f"- `{r}` ({s // 1024} KiB)" for r, s in left]
        with open(os.path.join(dest, "README.md"), "w") as out:
            out.write("\n".join(lines) + "\n")
    print(f"filed {len(kept)} files (+{len(derived)} CSVs derived, {len(left)} left out) "
          f"under {dest}")


if __name__ == "__main__":
    main()
