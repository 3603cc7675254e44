#!/usr/bin/env bash
# Fuzzes the decoders and the prober for a bounded time per target.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# Installs cargo-fuzz from crates.io if missing (scripts/tools.sh). The machine's toolchain is
# stable, so RUSTC_BOOTSTRAP=1 lets it accept the sanitizer flags cargo-fuzz passes.
# Seeds are short files of every supported format, made by ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
tools_bin=$(./scripts/tools.sh cargo-fuzz)
PATH="$tools_bin:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/splitsound/fuzz-target}"

seeds=fuzz/corpus/seeds
if [ ! -d "$seeds" ]; then
  mkdir -p "$seeds"
  src="$seeds/src.wav"
  ffmpeg -v error -y -f lavfi -i "sine=frequency=440:duration=0.2" -ac 2 -ar 44100 "$src"
  enc() { ffmpeg -v error -y -i "$src" "$@"; }
  enc -c:a pcm_s16le "$seeds/s16.wav"; enc -c:a pcm_f32le "$seeds/f32.wav"; enc -c:a pcm_s24be "$seeds/s24.aiff"
  enc -c:a flac "$seeds/a.flac"; enc -c:a libmp3lame "$seeds/a.mp3"; enc -c:a libvorbis "$seeds/a.ogg"
  enc -c:a aac "$seeds/a.m4a"; enc -c:a alac "$seeds/alac.m4a"; enc -c:a flac "$seeds/a.mkv"
  enc -c:a pcm_s16le "$seeds/a.caf"; enc -c:a aac -f adts "$seeds/a.aac"
  rm -f "$src"
fi
for t in decode probe; do
  mkdir -p "fuzz/corpus/$t"
  echo "==> fuzzing $t for ${secs}s"
  # -O: the build users ship (optimised, no overflow checks). With overflow
  # checks, symphonia's header arithmetic traps on hostile sizes; our decoder
  # turns such panics into errors (see `guarded` in core/src/decode.rs), but
  # libFuzzer's panic hook aborts on any panic, caught or not. Release builds
  # wrap instead and report the bad header; every other panic still aborts here.
  # core/tests/data/fuzz keeps the inputs found so far (tested in bad_input.rs).
  cargo fuzz run -O --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "$seeds" -- \
    -max_total_time="$secs" -max_len=262144 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
