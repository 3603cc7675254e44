#!/usr/bin/env bash
# The LV2 plugin (examples/lv2) in real LV2 hosts (run by scripts/test.sh, which installs lv2-dev,
# liblilv-dev, lilv-utils, jalv, jackd2 and valgrind from Debian):
#  - builds it against the installed C library (pkg-config splitsound lv2) and checks its TTL with lv2info;
#  - lv2apply (lilv's offline host) renders the demo through it, built-in separators, every stem, isolate
#    and remove, dry/wet: each render equals the library's own real-time path (lv2_check expect), sample
#    for sample, silent before the reported latency; isolate + remove is the delayed input;
#  - the `model` separator without a model path: the dry input, and a message saying why;
#  - jalv (a real-time host, on a dummy JACK server) restores a saved state that names a model package,
#    reports the model's latency, switches to a built-in through the worker while running, and exits
#    cleanly; states naming a missing file or a corrupt package give a clear message and no crash;
#  - a lilv host of our own (tests/lv2_rt_host.c) that interposes malloc counts the allocations made in
#    run() while it runs hpss, switches to center and then to a model sent by patch:Set: none;
#  - valgrind over an lv2apply render: no memory errors, no definite leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/splitsound/target}"
: "${SPLITSOUND_ORT_LIB:?set by scripts/test.sh: the ONNX Runtime library for the model tests}"
work=$(mktemp -d)
jack_pid=
cleanup() {
  [ -n "$jack_pid" ] && kill "$jack_pid" 2>/dev/null && wait "$jack_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
uri=https://splitsound.dev/lv2/splitsound
model=$repo/core/tests/data/neural/demucs/ci.json

echo "==> LV2: the plugin against the installed library"
./scripts/install-c.sh "$work/prefix" >/dev/null
cmake -S examples/lv2 -B "$work/build" -DSPLITSOUND_ROOT="$work/prefix" -DSPLITSOUND_LV2_TESTS=ON >"$work/cmake.log" 2>&1 ||
  { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/build" -j 2 >>"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
export LV2_PATH=$work/build/lv2
check=$work/build/lv2_check
lv2info "$uri" >"$work/lv2info.txt"
grep -q "Has latency:       yes, reported by port 8" "$work/lv2info.txt"

echo "==> LV2: lv2apply renders equal the library's real-time path"
cd "$work"
"$check" to-wav "$repo/examples/data/demo/mixture.flac" in.wav
render() { # output, then lv2apply's -c pairs
  local out=$1
  shift
  local args=()
  while [ $# -gt 0 ]; do args+=(-c "$1" "$2"); shift 2; done
  lv2apply -i in.wav -o "$out" "${args[@]}" "$uri" 2>"$out.log" || { cat "$out.log"; exit 1; }
}
n=0
for sep in 0 1; do
  name=$([ $sep = 0 ] && echo builtin:hpss || echo builtin:center)
  for stem in 0 1; do
    for mode in 0 1; do
      render "s$sep-$stem-$mode.wav" separator $sep stem $stem mode $mode mix 1
      "$check" expect "$name" in.wav $stem $mode 1 want.wav 2>want.log
      latency=$(sed -n 's/.*latency \([0-9]*\) frames/\1/p' want.log)
      grep -q "latency $latency frames" "s$sep-$stem-$mode.wav.log"
      # Isolate is silent before the latency; remove is the delayed input, silent there too.
      "$check" compare "s$sep-$stem-$mode.wav" want.wav 0 "$latency"
      n=$((n + 1))
    done
    "$check" expect "$name" in.wav $stem 0 0 dry.wav 2>/dev/null
    "$check" sum "s$sep-$stem-0.wav" "s$sep-$stem-1.wav" dry.wav 1e-6
  done
  render "s$sep-mix.wav" separator $sep stem 1 mode 1 mix 0.25
  "$check" expect "$name" in.wav 1 1 0.25 want.wav 2>/dev/null
  "$check" compare "s$sep-mix.wav" want.wav 0
done
echo "$n renders equal, isolate + remove = the delayed input, dry/wet"

echo "==> LV2: the model separator without a model: dry output and the reason"
render nomodel.wav separator 2
"$check" compare nomodel.wav in.wav 0
grep -q "without a model path" nomodel.wav.log

echo "==> LV2: jalv (real-time host, dummy JACK): saved state with a model, the worker, bad states"
export JACK_DEFAULT_SERVER=splitsound-lv2-$$
jackd --no-realtime -n "$JACK_DEFAULT_SERVER" -d dummy -r 44100 -p 1024 >jackd.log 2>&1 &
jack_pid=$!
for _ in $(seq 50); do jack_lsp >/dev/null 2>&1 && break; sleep 0.2; done
state() { # dir, model path
  mkdir -p "$1"
  cat >"$1/manifest.ttl" <<'TTL'
@prefix lv2: <http://lv2plug.in/ns/lv2core#> .
@prefix pset: <http://lv2plug.in/ns/ext/presets#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
<state.ttl> a pset:Preset ; lv2:appliesTo <https://splitsound.dev/lv2/splitsound> ; rdfs:seeAlso <state.ttl> .
TTL
  cat >"$1/state.ttl" <<TTL
@prefix atom: <http://lv2plug.in/ns/ext/atom#> .
@prefix lv2: <http://lv2plug.in/ns/lv2core#> .
@prefix pset: <http://lv2plug.in/ns/ext/presets#> .
@prefix state: <http://lv2plug.in/ns/ext/state#> .
<> a pset:Preset ;
  lv2:appliesTo <$uri> ;
  lv2:port [ lv2:symbol "separator" ; pset:value 2.0 ] , [ lv2:symbol "stem" ; pset:value 3.0 ] ;
  state:state [ <$uri#model> "$2"^^atom:Path ] .
TTL
}
jalv_session() { # state dir, commands (one per line, a second apart); prints jalv's output
  local dir=$1
  shift
  { sleep 2; for c in "$@"; do echo "$c"; sleep 1; done; } | timeout 60 jalv -l "$dir" "$uri" 2>&1
}
state ok "$model"
out=$(jalv_session ok monitors "separator = 0" monitors)
echo "$out" | grep -q "ci.json ready, 4 stems, latency" || { echo "$out"; exit 1; }
model_latency=$(echo "$out" | sed -n 's/.*ci.json ready, 4 stems, latency \([0-9]*\) frames/\1/p')
hpss_latency=$("$check" expect builtin:hpss in.wav 0 0 1 /dev/null 2>&1 | sed -n 's/.*latency \([0-9]*\) frames/\1/p')
# The model's latency, then (the worker loaded hpss while jalv ran) hpss's.
echo "$out" | grep -q "latency = $model_latency.000000" || { echo "$out"; exit 1; }
echo "$out" | grep -q "builtin:hpss ready, 2 stems, latency $hpss_latency frames" || { echo "$out"; exit 1; }
echo "$out" | grep -q "latency = $hpss_latency.000000" || { echo "$out"; exit 1; }
echo "jalv: the model from the saved state (latency $model_latency), then hpss through the worker ($hpss_latency)"
state missing "$work/no-such-model.json"
printf 'not a model' >"$work/corrupt.json"
state corrupt "$work/corrupt.json"
for bad in missing:no-such-model corrupt:corrupt; do
  out=$(jalv_session "${bad%%:*}" monitors)
  echo "$out" | grep -q "splitsound: .*${bad#*:}.json: .*the output is the dry input" || { echo "$out"; exit 1; }
  echo "$out" | grep -q "latency = 0.000000" || { echo "$out"; exit 1; }
  echo "$out" | grep -q "Exiting" || { echo "$out"; exit 1; }
done
echo "jalv: a missing model and a corrupt package are reported, the output is dry, jalv exits cleanly"

echo "==> LV2: run() allocates nothing (a lilv host that interposes malloc): built-ins, switches, the model"
"$work/build/lv2_rt_host" "$uri" "$model" 2>rt_host.log || { cat rt_host.log; exit 1; }

echo "==> LV2: valgrind over an lv2apply render (no memory errors, no definite leaks)"
valgrind -q --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite \
  lv2apply -i in.wav -o v.wav -c separator 1 -c stem 0 -c mode 1 "$uri" 2>valgrind.log || { cat valgrind.log; exit 1; }
"$check" expect builtin:center in.wav 0 1 1 want.wav 2>/dev/null
"$check" compare v.wav want.wav 0
echo "==> LV2: all passed"
