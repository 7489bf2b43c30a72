#!/usr/bin/env python3
"""Recall and false positives of envseal, gitleaks and Kingfisher on the generated
corpus (one file per case). A true case counts as found when the tool reports
anything in its file; a decoy file with any report is a false positive."""
import json, os, subprocess, sys, tempfile

corpus, envseal, gitleaks, kingfisher = sys.argv[1:5]
manifest = json.load(open(os.path.join(corpus, "manifest.json")))
truth = {c["path"]: len(c["rules"]) > 0 for c in manifest}


def rel(p):
    p = os.path.normpath(p)
    root = os.path.normpath(corpus)
    return os.path.relpath(p, root) if os.path.isabs(p) else p


def run_envseal():
    out = subprocess.run([envseal, "scan", "--no-git", "--no-progress", "--format", "json", corpus],
                         capture_output=True, text=True).stdout
    files = set()
    for f in json.loads(out)["findings"]:
        for loc in f["locations"]:
            files.add(loc["file"])
    return files


def run_gitleaks():
    with tempfile.NamedTemporaryFile(suffix=".json") as rep:
        subprocess.run([gitleaks, "dir", corpus, "--report-format", "json", "--report-path", rep.name,
                        "--no-banner", "--exit-code", "0"], capture_output=True)
        return {rel(os.path.join(corpus, f["File"]) if not os.path.isabs(f["File"]) else f["File"])
                for f in json.load(open(rep.name))}


def run_kingfisher():
    out = subprocess.run([kingfisher, "scan", corpus, "--no-validate", "--format", "json",
                          "--no-update-check"], capture_output=True, text=True).stdout
    files = set()
    first = json.JSONDecoder().raw_decode(out)[0]  # the report, then a summary line
    for f in first.get("findings", []):
        path = f["finding"]["path"]
        files.add(rel(path))
    return files


rows = []
for name, fn in [("envseal", run_envseal), ("gitleaks", run_gitleaks), ("kingfisher", run_kingfisher)]:
    files = {f for f in fn() if f != "manifest.json"}
    true_files = [p for p, t in truth.items() if t]
    decoys = [p for p, t in truth.items() if not t]
    found = [p for p in true_files if p in files]
    fps = [p for p in decoys if p in files]
    missed = sorted(set(true_files) - set(found))
    rows.append((name, len(found), len(true_files), len(fps), len(decoys), missed, fps))

print("| scanner | true cases found (recall) | decoys reported (false positives) |")
print("|---|---|---|")
for name, f, t, fp, d, _, _ in rows:
    print(f"| {name} | {f}/{t} ({100 * f / t:.0f} %) | {fp}/{d} |")
print()
for name, _, _, _, _, missed, fps in rows:
    print(f"{name} missed: {', '.join(missed) or '-'}")
    print(f"{name} false positives: {', '.join(fps) or '-'}")
