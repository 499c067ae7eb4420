#!/usr/bin/env bash
# Open a Snakemake HTML report in headless Chromium and check that it renders:
#   scripts/check_report.sh report.html [screenshot.png]
# Installs Debian's `chromium` when missing (needs root). Fails unless the report's JavaScript app drew its
# navigation (Tables and Figures categories) and the workflow caption, the captions state thresholds and
# seeds, and the screenshot is not blank.
set -euo pipefail
report="$(realpath "${1:?usage: scripts/check_report.sh report.html [screenshot.png]}")"
shot="${2:-${report%.html}.png}"
if ! command -v chromium >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
flags=(--headless --no-sandbox --disable-gpu --window-size=1400,1000 --virtual-time-budget=15000)
chromium "${flags[@]}" --screenshot="$shot" "file://$report" 2>/dev/null
dom="$(mktemp)"
trap 'rm -f "$dom"' EXIT
chromium "${flags[@]}" --dump-dom "file://$report" 2>/dev/null >"$dom"
python - "$report" "$dom" "$shot" <<'PY'
import sys

import matplotlib.image as mpimg

report, dom, shot = (open(sys.argv[1], encoding="utf-8").read(), open(sys.argv[2], encoding="utf-8").read(), sys.argv[3])
problems = []
for part in ("<span>Tables</span>", "<span>Figures</span>"):
    if part not in dom:
        problems.append(f"the rendered page has no {part} navigation entry (the report's app did not run)")
if dom.count("Influence benchmark") < 2:  # once in the embedded data, once drawn on the page
    problems.append("the workflow caption was not drawn")
for needed in ("Thresholds:", "Seeds [", "n_b"):
    if needed not in report:
        problems.append(f"no caption states {needed!r}")
img = mpimg.imread(shot)
if img.std() < 0.02:
    problems.append(f"the screenshot {shot} is blank")
if problems:
    sys.exit("report check FAILED:\n  " + "\n  ".join(problems))
print(f"report renders: navigation and captions drawn, screenshot {shot} ({img.shape[1]}x{img.shape[0]})")
PY
