#!/usr/bin/env bash
# Regenerates the prompt WAVs from prompts.txt with espeak-ng (text to speech) and sox
# (conversion to the 8 kHz mono 16-bit PCM the media engine plays natively).
#
# Usage: prompts/gen.sh [prompts.txt] [output dir]    (defaults: next to this script)
# Needs: espeak-ng, sox (Debian/Ubuntu: apt-get install espeak-ng sox)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
list="${1:-$here/prompts.txt}"
out="${2:-$here}"

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "gen.sh: $tool not found; apt-get install espeak-ng sox" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

count=0
lineno=0
while IFS= read -r line || [[ -n "$line" ]]; do
    lineno=$((lineno + 1))
    # Skip blank lines and comments.
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    if [[ "$line" != *"|"* ]]; then
        echo "gen.sh: $list:$lineno: expected name|text, got: $line" >&2
        exit 1
    fi
    name="${line%%|*}"
    text="${line#*|}"
    if [[ ! "$name" =~ ^[a-z0-9_]+$ ]]; then
        echo "gen.sh: $list:$lineno: prompt name '$name' must be lower-case letters, digits and _" >&2
        exit 1
    fi
    espeak-ng -v en-us -s 150 -w "$tmp/tts.wav" "$text"
    # Resample with sox's high-quality filter, normalise to -3 dBFS so every prompt is equally
    # loud with headroom for G.711, and pad 200 ms of silence at the end so the last word is not
    # clipped by the far end's jitter buffer when the next prompt or a hang-up follows.
    sox "$tmp/tts.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/$name.wav" norm -3 pad 0 0.2
    echo "$name.wav: $(soxi -D "$out/$name.wav")s"
    count=$((count + 1))
done < "$list"

echo "gen.sh: wrote $count prompts to $out"
