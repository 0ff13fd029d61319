#!/bin/sh
# The report's text survives the trip through the PDF: pdftotext finds the summary sentence,
# Chinese included (only an embedded TrueType CJK font does that, DESIGN §8), and pdfinfo
# accepts the file. $1 is the test_report executable. Exit 77 (meson: skipped) without
# poppler-utils or the CJK font.
set -eu
exe=$1
font=/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
for tool in pdftotext pdfinfo; do
    command -v "$tool" >/dev/null 2>&1 || { echo "skip: $tool not installed"; exit 77; }
done
[ -r "$font" ] || { echo "skip: $font not installed"; exit 77; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$exe" --write "$dir/report.pdf"
pdfinfo "$dir/report.pdf" >"$dir/info.txt"
grep -q '^Pages: *1$' "$dir/info.txt" || { echo "pdfinfo: not one page"; cat "$dir/info.txt"; exit 1; }
# Wrapped lines come back as separate lines: compare with whitespace folded.
pdftotext -enc UTF-8 "$dir/report.pdf" - 2>/dev/null | tr -s ' \n' '  ' >"$dir/text.txt"
status=0
for want in '注册成功率 registration success rate dropped 31% vs expected; started 14:05 UTC.' \
            'Incident #7: registration_success_rate' 'sigma3' '412 at 2026-11-25 14:15 UTC (expected 598.5, -31.2%)' \
            'country=DE,platform=android 402 151 78%' 'country=日本,platform=ios' \
            'sigma3 (window=180, min_history=90)' 'Opened 2026-11-25 14:07 UTC'; do
    if grep -qF "$want" "$dir/text.txt"; then
        echo "ok: found '$want'"
    else
        echo "missing: '$want'"
        status=1
    fi
done
[ $status -eq 0 ] || { echo "--- extracted text:"; cat "$dir/text.txt"; }
exit $status
