#!/bin/sh
# Regenerates the prosody test clips (espeak-ng 1.51 and sox 14.4 from Debian; the tests read
# the committed WAVs and need neither). Styles: pitch -p, speed -s (words/min), amplitude -a.
set -eu
cd "$(dirname "$0")"
say() {  # name pitch speed amplitude text
    espeak-ng -v en-us -p "$2" -s "$3" -a "$4" -w "/tmp/$1.raw.wav" "$5"
    sox -D "/tmp/$1.raw.wav" -r 16000 -b 16 -c 1 "$1.wav" pad 0.2 0.2
    rm "/tmp/$1.raw.wav"
}
for style in "excited 85 210 180" "neutral 50 160 100" "sad 20 110 50"; do
    set -- $style
    say "${1}_park" "$2" "$3" "$4" "We went to the park and played on the big slide."
    say "${1}_teddy" "$2" "$3" "$4" "Teddy, I have something to tell you about my day."
done
