#!/usr/bin/env bash
# Word error rate of voicemail transcription (README "Transcription", BENCHMARKS.md).
#
#   benches/transcribe_wer.sh [OUT_DIR]
#
# Speaks each line of benches/transcribe_messages.txt with espeak-ng (voice en-us, its default
# speed) and transcribes it with the PocketSphinx engine (examples/transcribe_wer.rs, the same
# code the worker runs) two ways:
#   - "16 kHz": espeak-ng's audio resampled to 16 kHz (the model's rate): the engine's best case;
#   - "phone":  what a voicemail really is: 8 kHz, through a G.711 µ-law round trip, stored as
#               8 kHz 16-bit WAV, upsampled ×2 by the engine;
# each with the Debian generic language model and with models/it-support.lm (built from
# models/it-support-corpus.txt, which must not contain the test sentences; checked below).
# Needs: espeak-ng, sox, pocketsphinx, pocketsphinx-en-us, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
messages=benches/transcribe_messages.txt
corpus=models/it-support-corpus.txt
if grep -qFxf "$messages" "$corpus"; then
  echo "$corpus contains a test sentence; the domain model would be tested on its training data" >&2
  exit 1
fi
dict=/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict
python3 models/make_lm.py "$corpus" "$dict" "$out/it-support.lm"
if ! cmp -s "$out/it-support.lm" models/it-support.lm; then
  echo "models/it-support.lm is not what models/make_lm.py makes from $corpus; regenerate it" >&2
  exit 1
fi
: > "$out/16k.list"
: > "$out/phone.list"
i=0
while IFS= read -r text; do
  i=$((i + 1))
  espeak-ng -v en-us -w "$out/tts$i.wav" "$text"
  sox -D "$out/tts$i.wav" -r 16000 -b 16 -c 1 "$out/m$i-16k.wav"
  sox -D "$out/tts$i.wav" -r 8000 -c 1 -e u-law "$out/m$i-ulaw.wav"
  sox -D "$out/m$i-ulaw.wav" -e signed -b 16 "$out/m$i-phone.wav"
  printf '%s\t%s\n' "$out/m$i-16k.wav" "$text" >> "$out/16k.list"
  printf '%s\t%s\n' "$out/m$i-phone.wav" "$text" >> "$out/phone.list"
done < "$messages"
# Debug is enough: PocketSphinx (a child process) is the time; the Rust side only upsamples.
cargo build -q --example transcribe_wer
bin="${CARGO_TARGET_DIR:-target}/debug/examples/transcribe_wer"
for audio in 16k phone; do
  for lm in generic it-support; do
    echo "### $audio, $lm language model"
    echo
    if [ "$lm" = generic ]; then "$bin" "$out/$audio.list"; else "$bin" "$out/$audio.list" models/it-support.lm; fi
    echo
  done
done | tee "$out/results.md"
echo "results: $out/results.md" >&2
