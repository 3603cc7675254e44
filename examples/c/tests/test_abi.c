/*
 * The C test suite of splitsound's C API: every entry point's success and
 * failure paths as a C caller sees them. Run by scripts/test-c.sh under
 * AddressSanitizer + UBSan and under valgrind.
 *
 *   test_abi DEMO.flac TMPDIR [MODEL.json [--model-only]]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "splitsound.h"

static int failures = 0, checks = 0;

#define CHECK(cond)                                                       \
  do {                                                                    \
    checks++;                                                             \
    if (!(cond)) {                                                        \
      failures++;                                                         \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                     \
  } while (0)

#define CHECK_STATUS(call, expected)                                               \
  do {                                                                             \
    splitsound_status got_ = (call);                                               \
    checks++;                                                                      \
    if (got_ != (expected)) {                                                      \
      char msg_[512] = "";                                                         \
      splitsound_last_error(msg_, sizeof msg_, NULL);                              \
      failures++;                                                                  \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__, __LINE__, #call, \
              splitsound_status_name(got_), splitsound_status_name(expected), msg_); \
    }                                                                              \
  } while (0)

#define OK(call) CHECK_STATUS(call, SPLITSOUND_STATUS_OK)

static const char *demo, *tmpdir, *model;

static int last_error_contains(const char *needle) {
  char msg[1024];
  if (splitsound_last_error(msg, sizeof msg, NULL) != SPLITSOUND_STATUS_OK) {
    return 0;
  }
  return strstr(msg, needle) != NULL;
}

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && st.st_size > 0;
}

static void test_version_and_status_names(void) {
  const char *v = splitsound_version();
  CHECK(v && strlen(v) >= 5 && strchr(v, '.'));
  CHECK(strcmp(splitsound_status_name(SPLITSOUND_STATUS_NULL_ARGUMENT), "SPLITSOUND_STATUS_NULL_ARGUMENT") == 0);
  CHECK(strcmp(splitsound_status_name(SPLITSOUND_STATUS_CHANNEL_MISMATCH), "SPLITSOUND_STATUS_CHANNEL_MISMATCH") == 0);
  CHECK(strcmp(splitsound_status_name(9999), "SPLITSOUND_STATUS_UNKNOWN") == 0);
}

static void test_null_arguments_and_last_error(void) {
  splitsound_separator *sep = (splitsound_separator *)0x1; /* must stay untouched */
  size_t n = 12345, needed = 0;
  CHECK_STATUS(splitsound_separator_new(NULL, NULL, &sep), SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK(sep == (splitsound_separator *)0x1);
  CHECK(last_error_contains("model"));
  CHECK_STATUS(splitsound_separator_new("builtin:hpss", NULL, NULL), SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(splitsound_separator_stem_count(NULL, &n), SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK(n == 12345);
  CHECK_STATUS(splitsound_decode_file(NULL, NULL, NULL), SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(splitsound_probe("x.wav", NULL), SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(splitsound_rt_process(NULL, NULL, 0, NULL, 0, 0), SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(splitsound_options_set_overlap(NULL, 0.5), SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(splitsound_cancel_request(NULL), SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(splitsound_query_resolve("vocals", NULL, 1, NULL), SPLITSOUND_STATUS_NULL_ARGUMENT);

  /* Every _free takes NULL. */
  splitsound_audio_free(NULL);
  splitsound_options_free(NULL);
  splitsound_separator_free(NULL);
  splitsound_cancel_free(NULL);
  splitsound_file_options_free(NULL);
  splitsound_report_free(NULL);
  splitsound_query_free(NULL);
  splitsound_rt_free(NULL);

  /* The size protocol of strings, on the last error itself. */
  CHECK_STATUS(splitsound_separator_new("builtin:nope", NULL, &sep), SPLITSOUND_STATUS_UNKNOWN_SEPARATOR);
  CHECK_STATUS(splitsound_last_error(NULL, 0, &needed), SPLITSOUND_STATUS_BUFFER_TOO_SMALL);
  CHECK(needed > 10);
  char *buf = malloc(needed);
  CHECK_STATUS(splitsound_last_error(buf, needed - 1, &n), SPLITSOUND_STATUS_BUFFER_TOO_SMALL);
  CHECK(n == needed);
  OK(splitsound_last_error(buf, needed, &n));
  CHECK(n == needed - 1 && strlen(buf) == n && strstr(buf, "hpss"));
  CHECK_STATUS(splitsound_last_error(NULL, 5, &n), SPLITSOUND_STATUS_NULL_ARGUMENT);
  free(buf);

  /* Not UTF-8. */
  CHECK_STATUS(splitsound_separator_new("builtin:\xff\xfe", NULL, &sep), SPLITSOUND_STATUS_INVALID_UTF8);
}

static void test_options(void) {
  splitsound_options *o = NULL;
  OK(splitsound_options_new(&o));
  OK(splitsound_options_set_providers(o, "cuda:0,cpu"));
  CHECK_STATUS(splitsound_options_set_providers(o, "tpu"), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK(last_error_contains("tpu"));
  OK(splitsound_options_set_threads(o, 2));
  OK(splitsound_options_set_overlap(o, 0.25));
  OK(splitsound_options_set_shifts(o, 1));
  OK(splitsound_options_set_seed(o, 42));
  OK(splitsound_options_set_batch(o, 1));
  OK(splitsound_options_set_strict_providers(o, false));
  OK(splitsound_options_set_runtime_library(o, NULL));
  OK(splitsound_options_set_rt_headroom(o, 1.0));
  OK(splitsound_options_set_rt_underrun(o, "other"));
  OK(splitsound_options_set_json(o, "{\"overlap\": 0.5, \"denoise\": true}"));
  CHECK_STATUS(splitsound_options_set_json(o, "{\"overlap\": "), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(splitsound_options_set_json(o, "{\"no_such_field\": 1}"), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK(last_error_contains("no_such_field"));
  /* Built-ins ignore model options. */
  splitsound_separator *sep = NULL;
  OK(splitsound_separator_new("builtin:center", o, &sep));
  splitsound_separator_free(sep);
  splitsound_options_free(o);
}

static void test_decode_and_probe(void) {
  splitsound_media_info info;
  OK(splitsound_probe(demo, &info));
  CHECK(info.sample_rate == 44100 && info.channels == 2 && info.frames > 44100 && info.tracks == 1);
  CHECK(strcmp(info.container, "flac") == 0 || strstr(info.codec, "flac"));

  splitsound_audio *a = NULL;
  OK(splitsound_decode_file(demo, NULL, &a));
  uint32_t rate = 0;
  size_t channels = 0, frames = 0, n = 0;
  OK(splitsound_audio_sample_rate(a, &rate));
  OK(splitsound_audio_channels(a, &channels));
  OK(splitsound_audio_frames(a, &frames));
  CHECK(rate == 44100 && channels == 2 && (uint64_t)frames == info.frames);
  const float *left = NULL, *right = NULL;
  OK(splitsound_audio_channel(a, 0, &left, &n));
  CHECK(n == frames);
  OK(splitsound_audio_channel(a, 1, &right, &n));
  CHECK_STATUS(splitsound_audio_channel(a, 2, &left, &n), SPLITSOUND_STATUS_INVALID_ARGUMENT);

  float small[4];
  CHECK_STATUS(splitsound_audio_copy_interleaved(a, small, 4, &n), SPLITSOUND_STATUS_BUFFER_TOO_SMALL);
  CHECK(n == 2 * frames);
  float *inter = malloc(n * sizeof *inter);
  OK(splitsound_audio_copy_interleaved(a, inter, n, &n));
  CHECK(inter[0] == left[0] && inter[1] == right[0] && inter[2 * 1000 + 1] == right[1000]);
  free(inter);
  splitsound_audio_free(a);

  /* Errors a file host meets. */
  char path[4096];
  snprintf(path, sizeof path, "%s/does-not-exist.wav", tmpdir);
  CHECK_STATUS(splitsound_decode_file(path, NULL, &a), SPLITSOUND_STATUS_IO);
  CHECK(last_error_contains("does-not-exist.wav"));
  static const uint8_t garbage[64] = "this is not audio at all, just some text pretending to be audio";
  CHECK_STATUS(splitsound_decode_memory(garbage, sizeof garbage, NULL, NULL, &a), SPLITSOUND_STATUS_UNRECOGNIZED_FORMAT);
  CHECK_STATUS(splitsound_decode_memory(garbage, 0, "wav", NULL, &a), SPLITSOUND_STATUS_EMPTY);
  CHECK_STATUS(splitsound_decode_memory(NULL, 10, "wav", NULL, &a), SPLITSOUND_STATUS_NULL_ARGUMENT);

  /* A WAV whose header declares 1000 frames but holds 100. */
  uint8_t wav[44 + 400];
  memset(wav, 0, sizeof wav);
  memcpy(wav, "RIFF", 4);
  uint32_t riff = 36 + 4000, fmt = 16, rate16 = 8000, bps = 16000, data = 4000;
  uint16_t pcm = 1, ch = 1, align = 2, bits = 16;
  memcpy(wav + 4, &riff, 4);
  memcpy(wav + 8, "WAVEfmt ", 8);
  memcpy(wav + 16, &fmt, 4);
  memcpy(wav + 20, &pcm, 2);
  memcpy(wav + 22, &ch, 2);
  memcpy(wav + 24, &rate16, 4);
  memcpy(wav + 28, &bps, 4);
  memcpy(wav + 32, &align, 2);
  memcpy(wav + 34, &bits, 2);
  memcpy(wav + 36, "data", 4);
  memcpy(wav + 40, &data, 4);
  CHECK_STATUS(splitsound_decode_memory(wav, sizeof wav, "wav", NULL, &a), SPLITSOUND_STATUS_TRUNCATED);
  splitsound_decode_limits limits = {0, 0.0, true};
  OK(splitsound_decode_memory(wav, sizeof wav, "wav", &limits, &a));
  OK(splitsound_audio_frames(a, &frames));
  CHECK(frames == 200);
  splitsound_audio_free(a);
  limits.allow_truncated = false;
  limits.max_bytes = 100;
  CHECK_STATUS(splitsound_decode_memory(wav, sizeof wav, "wav", &limits, &a), SPLITSOUND_STATUS_TOO_LARGE);
  limits.max_bytes = 0;
  limits.max_duration_secs = -1.0;
  CHECK_STATUS(splitsound_decode_file(demo, &limits, &a), SPLITSOUND_STATUS_INVALID_ARGUMENT);
}

/* Progress: checks the stages arrive and can cancel. */
typedef struct {
  int calls;
  int cancel_after;
  splitsound_cancel *cancel;
  uint64_t last_done;
  int went_back;
} progress_state;

static void on_progress(void *userdata, splitsound_stage stage, uint64_t done, uint64_t total) {
  progress_state *p = userdata;
  p->calls++;
  if (stage > SPLITSOUND_STAGE_WRITE || done > total) {
    p->went_back++;
  }
  if (p->cancel && p->calls == p->cancel_after) {
    splitsound_cancel_request(p->cancel);
  }
}

/* The first `frames` frames of the demo, planar. */
static float **demo_frames(size_t frames) {
  splitsound_audio *a = NULL;
  float **ch = calloc(2, sizeof *ch);
  if (splitsound_decode_file(demo, NULL, &a) != SPLITSOUND_STATUS_OK) {
    return ch;
  }
  for (size_t c = 0; c < 2; c++) {
    const float *data = NULL;
    size_t n = 0;
    splitsound_audio_channel(a, c, &data, &n);
    ch[c] = calloc(frames, sizeof(float));
    memcpy(ch[c], data, (n < frames ? n : frames) * sizeof(float));
  }
  splitsound_audio_free(a);
  return ch;
}

static void free_planar(float **p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(p[i]);
  }
  free(p);
}

static void test_separate_buffer(void) {
  splitsound_separator *sep = NULL;
  OK(splitsound_separator_new("builtin:hpss", NULL, &sep));
  size_t stems = 0, out_ch = 0, n = 0;
  uint32_t rate = 1;
  char name[64];
  OK(splitsound_separator_stem_count(sep, &stems));
  CHECK(stems == 2);
  OK(splitsound_separator_stem_name(sep, 0, name, sizeof name, &n));
  CHECK(strcmp(name, "harmonic") == 0 && n == 8);
  CHECK_STATUS(splitsound_separator_stem_name(sep, 0, name, 8, &n), SPLITSOUND_STATUS_BUFFER_TOO_SMALL);
  CHECK(n == 9);
  OK(splitsound_separator_stem_name(sep, 1, name, sizeof name, NULL));
  CHECK(strcmp(name, "percussive") == 0);
  CHECK_STATUS(splitsound_separator_stem_name(sep, 2, name, sizeof name, NULL), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  OK(splitsound_separator_sample_rate(sep, &rate));
  CHECK(rate == 0);
  OK(splitsound_separator_output_channels(sep, 2, &out_ch));
  CHECK(out_ch == 2);
  OK(splitsound_separator_provider(sep, name, sizeof name, NULL));
  CHECK(strcmp(name, "cpu") == 0);

  const size_t frames = 3 * 44100;
  float **in = demo_frames(frames);
  float *outs[4];
  for (int i = 0; i < 4; i++) {
    outs[i] = calloc(frames, sizeof(float));
  }
  const float *const *cin = (const float *const *)in;
  progress_state prog = {0, 0, NULL, 0, 0};
  OK(splitsound_separator_separate(sep, cin, 2, frames, 44100, outs, 4, on_progress, &prog, NULL));
  CHECK(prog.calls > 0 && prog.went_back == 0);
  /* hpss's stems add up to the mix. */
  double worst = 0;
  for (size_t c = 0; c < 2; c++) {
    for (size_t f = 0; f < frames; f++) {
      double e = fabs((double)outs[c][f] + outs[2 + c][f] - in[c][f]);
      worst = e > worst ? e : worst;
    }
  }
  CHECK(worst < 1e-4);

  /* Wrong shapes and values. */
  CHECK_STATUS(splitsound_separator_separate(sep, cin, 2, frames, 44100, outs, 3, NULL, NULL, NULL),
               SPLITSOUND_STATUS_CHANNEL_MISMATCH);
  CHECK(last_error_contains("4"));
  CHECK_STATUS(splitsound_separator_separate(sep, cin, 0, frames, 44100, outs, 4, NULL, NULL, NULL),
               SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(splitsound_separator_separate(sep, NULL, 2, frames, 44100, outs, 4, NULL, NULL, NULL),
               SPLITSOUND_STATUS_NULL_ARGUMENT);
  float *with_null[4] = {outs[0], NULL, outs[2], outs[3]};
  CHECK_STATUS(splitsound_separator_separate(sep, cin, 2, frames, 44100, with_null, 4, NULL, NULL, NULL),
               SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(splitsound_separator_separate(sep, cin, 2, 0, 44100, outs, 4, NULL, NULL, NULL), SPLITSOUND_STATUS_EMPTY);
  CHECK_STATUS(splitsound_separator_separate(sep, cin, 2, frames, 1000, outs, 4, NULL, NULL, NULL),
               SPLITSOUND_STATUS_UNSUPPORTED_SAMPLE_RATE);
  float saved = in[1][500];
  in[1][500] = NAN;
  CHECK_STATUS(splitsound_separator_separate(sep, cin, 2, frames, 44100, outs, 4, NULL, NULL, NULL),
               SPLITSOUND_STATUS_NON_FINITE);
  in[1][500] = saved;

  /* Cancelling from the progress callback. */
  splitsound_cancel *cancel = NULL;
  bool requested = true;
  OK(splitsound_cancel_new(&cancel));
  OK(splitsound_cancel_is_requested(cancel, &requested));
  CHECK(!requested);
  progress_state stop = {0, 2, cancel, 0, 0};
  CHECK_STATUS(splitsound_separator_separate(sep, cin, 2, frames, 44100, outs, 4, on_progress, &stop, cancel),
               SPLITSOUND_STATUS_CANCELLED);
  OK(splitsound_cancel_is_requested(cancel, &requested));
  CHECK(requested);
  splitsound_cancel_free(cancel);

  /* Mono in, mono stems out; in place (outputs aliasing the input). */
  float *mono = calloc(frames, sizeof(float));
  memcpy(mono, in[0], frames * sizeof(float));
  float *mono_outs[2] = {mono, outs[1]};
  OK(splitsound_separator_output_channels(sep, 1, &out_ch));
  CHECK(out_ch == 1);
  const float *mono_in[1] = {mono};
  OK(splitsound_separator_separate(sep, mono_in, 1, frames, 44100, mono_outs, 2, NULL, NULL, NULL));
  worst = 0;
  for (size_t f = 0; f < frames; f++) {
    double e = fabs((double)mono[f] + outs[1][f] - in[0][f]);
    worst = e > worst ? e : worst;
  }
  CHECK(worst < 1e-4);
  free(mono);

  for (int i = 0; i < 4; i++) {
    free(outs[i]);
  }
  free_planar(in, 2);
  splitsound_separator_free(sep);
}

static void test_separate_file(void) {
  splitsound_separator *sep = NULL;
  splitsound_file_options *fo = NULL;
  splitsound_report *report = NULL;
  char out[4096], path[4096], name[64];
  size_t count = 0;
  snprintf(out, sizeof out, "%s/files", tmpdir);
  OK(splitsound_separator_new("builtin:hpss", NULL, &sep));
  OK(splitsound_file_options_new(&fo));
  OK(splitsound_file_options_set_bits(fo, 32));
  OK(splitsound_file_options_set_clip(fo, SPLITSOUND_CLIP_NONE));
  CHECK_STATUS(splitsound_file_options_set_bits(fo, 20), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(splitsound_file_options_set_clip(fo, 7), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(splitsound_file_options_set_format(fo, 9), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  OK(splitsound_separator_separate_file(sep, demo, out, fo, NULL, NULL, NULL, &report));
  OK(splitsound_report_stem_count(report, &count));
  CHECK(count == 2);
  OK(splitsound_report_stem_name(report, 1, name, sizeof name, NULL));
  CHECK(strcmp(name, "percussive") == 0);
  OK(splitsound_report_stem_path(report, 0, path, sizeof path, NULL));
  CHECK(file_exists(path) && strstr(path, "mixture/harmonic.wav"));
  splitsound_report_free(report);

  /* The file path and the buffer path give the same samples. */
  splitsound_audio *harmonic = NULL, *mix = NULL;
  OK(splitsound_decode_file(path, NULL, &harmonic));
  OK(splitsound_decode_file(demo, NULL, &mix));
  size_t frames = 0, hf = 0;
  OK(splitsound_audio_frames(mix, &frames));
  OK(splitsound_audio_frames(harmonic, &hf));
  CHECK(hf == frames);
  const float *in[2], *h[2];
  float *outs[4];
  for (size_t c = 0; c < 2; c++) {
    size_t n;
    splitsound_audio_channel(mix, c, &in[c], &n);
    splitsound_audio_channel(harmonic, c, &h[c], &n);
  }
  for (int i = 0; i < 4; i++) {
    outs[i] = calloc(frames, sizeof(float));
  }
  OK(splitsound_separator_separate(sep, in, 2, frames, 44100, outs, 4, NULL, NULL, NULL));
  double worst = 0;
  for (size_t c = 0; c < 2 && hf == frames; c++) {
    for (size_t f = 0; f < frames; f++) {
      double e = fabs((double)outs[c][f] - h[c][f]);
      worst = e > worst ? e : worst;
    }
  }
  CHECK(worst <= 1e-6);
  for (int i = 0; i < 4; i++) {
    free(outs[i]);
  }
  splitsound_audio_free(harmonic);
  splitsound_audio_free(mix);

  /* Selections. */
  const char *wanted[] = {"vocals"};
  OK(splitsound_file_options_set_stems(fo, wanted, 1));
  CHECK_STATUS(splitsound_separator_separate_file(sep, demo, out, fo, NULL, NULL, NULL, NULL),
               SPLITSOUND_STATUS_UNKNOWN_STEM);
  OK(splitsound_file_options_set_query(fo, "remove the drums"));
  OK(splitsound_separator_separate_file(sep, demo, out, fo, NULL, NULL, NULL, &report));
  OK(splitsound_report_stem_count(report, &count));
  CHECK(count == 2);
  OK(splitsound_report_stem_name(report, 0, name, sizeof name, NULL));
  CHECK(strcmp(name, "no_percussive") == 0);
  splitsound_report_free(report);
  OK(splitsound_file_options_set_query(fo, "the sound of silence in a cave"));
  CHECK_STATUS(splitsound_separator_separate_file(sep, demo, out, fo, NULL, NULL, NULL, NULL),
               SPLITSOUND_STATUS_UNRESOLVED_QUERY);

  /* FLAC cannot hold floats; a cancelled job leaves nothing behind. */
  OK(splitsound_file_options_set_query(fo, NULL));
  OK(splitsound_file_options_set_format(fo, SPLITSOUND_FORMAT_FLAC));
  CHECK_STATUS(splitsound_separator_separate_file(sep, demo, out, fo, NULL, NULL, NULL, NULL),
               SPLITSOUND_STATUS_INVALID_ARGUMENT);
  OK(splitsound_file_options_set_bits(fo, 24));
  splitsound_cancel *cancel = NULL;
  OK(splitsound_cancel_new(&cancel));
  progress_state stop = {0, 3, cancel, 0, 0};
  char cancelled_dir[4096], flac[4200];
  snprintf(cancelled_dir, sizeof cancelled_dir, "%s/cancelled", tmpdir);
  snprintf(flac, sizeof flac, "%s/mixture/harmonic.flac", cancelled_dir);
  remove(flac); /* left by an earlier run */
  CHECK_STATUS(splitsound_separator_separate_file(sep, demo, cancelled_dir, fo, on_progress, &stop, cancel, NULL),
               SPLITSOUND_STATUS_CANCELLED);
  CHECK(!file_exists(flac));
  splitsound_cancel_free(cancel);
  OK(splitsound_separator_separate_file(sep, demo, cancelled_dir, fo, NULL, NULL, NULL, NULL));
  CHECK(file_exists(flac));

  CHECK_STATUS(splitsound_separator_separate_file(sep, NULL, out, fo, NULL, NULL, NULL, NULL),
               SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(splitsound_separator_separate_file(sep, "/no/such/file.wav", out, fo, NULL, NULL, NULL, NULL),
               SPLITSOUND_STATUS_IO);
  splitsound_file_options_free(fo);
  splitsound_separator_free(sep);
}

static void test_query(void) {
  const char *stems[] = {"drums", "bass", "other", "vocals"};
  splitsound_query *q = NULL;
  uint32_t mode = 99;
  size_t n = 0;
  char name[64];
  OK(splitsound_query_resolve("remove the vocals", stems, 4, &q));
  OK(splitsound_query_mode_of(q, &mode));
  CHECK(mode == SPLITSOUND_QUERY_MODE_REMOVE);
  OK(splitsound_query_target_count(q, &n));
  CHECK(n == 1);
  OK(splitsound_query_target(q, 0, name, sizeof name, NULL));
  CHECK(strcmp(name, "vocals") == 0);
  CHECK_STATUS(splitsound_query_target(q, 1, name, sizeof name, NULL), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  splitsound_query_free(q);

  OK(splitsound_query_resolve("just the piano", stems, 4, &q));
  OK(splitsound_query_mode_of(q, &mode));
  CHECK(mode == SPLITSOUND_QUERY_MODE_ISOLATE);
  OK(splitsound_query_note_count(q, &n));
  CHECK(n == 1);
  OK(splitsound_query_note(q, 0, name, sizeof name, NULL));
  CHECK(strstr(name, "other") != NULL);
  splitsound_query_free(q);

  CHECK_STATUS(splitsound_query_resolve("the weather tomorrow", stems, 4, &q), SPLITSOUND_STATUS_UNRESOLVED_QUERY);
  const char *bad[] = {"drums", NULL};
  CHECK_STATUS(splitsound_query_resolve("drums", bad, 2, &q), SPLITSOUND_STATUS_NULL_ARGUMENT);
}

static void test_realtime(void) {
  splitsound_rt *rt = NULL;
  CHECK_STATUS(splitsound_rt_new("builtin:repet", NULL, &rt), SPLITSOUND_STATUS_UNSUPPORTED);
  CHECK_STATUS(splitsound_rt_new("builtin:nope", NULL, &rt), SPLITSOUND_STATUS_UNKNOWN_SEPARATOR);
  OK(splitsound_rt_new("builtin:hpss", NULL, &rt));
  size_t stems = 0, out_ch = 0, latency = 0;
  OK(splitsound_rt_stem_count(rt, &stems));
  CHECK(stems == 2);
  CHECK_STATUS(splitsound_rt_latency(rt, &latency), SPLITSOUND_STATUS_NOT_PREPARED);

  enum { MAX = 512 };
  const size_t frames = 5 * 44100;
  float **in = demo_frames(frames);
  float *outs[4];
  for (int i = 0; i < 4; i++) {
    outs[i] = calloc(MAX, sizeof(float));
  }
  const float *blk[2] = {in[0], in[1]};
  CHECK_STATUS(splitsound_rt_process(rt, blk, 2, outs, 4, 64), SPLITSOUND_STATUS_NOT_PREPARED);
  CHECK_STATUS(splitsound_rt_prepare(rt, 44100, 0, 2), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(splitsound_rt_prepare(rt, 44100, 512, 0), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(splitsound_rt_prepare(rt, 44100, (size_t)-1, 2), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(splitsound_rt_prepare(rt, 7, 512, 2), SPLITSOUND_STATUS_UNSUPPORTED_SAMPLE_RATE);
  OK(splitsound_rt_prepare(rt, 44100, MAX, 2));
  OK(splitsound_rt_latency(rt, &latency));
  OK(splitsound_rt_output_channels(rt, &out_ch));
  CHECK(latency > 0 && latency < 44100 && out_ch == 2);

  CHECK_STATUS(splitsound_rt_process(rt, blk, 1, outs, 4, 64), SPLITSOUND_STATUS_CHANNEL_MISMATCH);
  CHECK_STATUS(splitsound_rt_process(rt, blk, 2, outs, 3, 64), SPLITSOUND_STATUS_CHANNEL_MISMATCH);
  CHECK_STATUS(splitsound_rt_process(rt, blk, 2, outs, 4, MAX + 1), SPLITSOUND_STATUS_BLOCK_TOO_LARGE);
  const float *null_in[2] = {in[0], NULL};
  CHECK_STATUS(splitsound_rt_process(rt, null_in, 2, outs, 4, 64), SPLITSOUND_STATUS_NULL_ARGUMENT);
  float *same[4] = {outs[0], outs[0], outs[2], outs[3]};
  CHECK_STATUS(splitsound_rt_process(rt, blk, 2, same, 4, 64), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  OK(splitsound_rt_reset(rt));

  /* Stream the input in uneven blocks; the output is the offline separation delayed by the latency. */
  float **got = calloc(4, sizeof *got);
  for (int i = 0; i < 4; i++) {
    got[i] = calloc(frames, sizeof(float));
  }
  static const size_t sizes[] = {512, 1, 64, 300, 511, 17};
  size_t pos = 0, k = 0;
  while (pos < frames) {
    size_t n = sizes[k++ % 6];
    n = n < frames - pos ? n : frames - pos;
    const float *b[2] = {in[0] + pos, in[1] + pos};
    CHECK_STATUS(splitsound_rt_process(rt, b, 2, outs, 4, n), SPLITSOUND_STATUS_OK);
    for (int i = 0; i < 4; i++) {
      memcpy(got[i] + pos, outs[i], n * sizeof(float));
    }
    pos += n;
  }
  splitsound_separator *sep = NULL;
  float *ref[4];
  for (int i = 0; i < 4; i++) {
    ref[i] = calloc(frames, sizeof(float));
  }
  OK(splitsound_separator_new("builtin:hpss", NULL, &sep));
  OK(splitsound_separator_separate(sep, (const float *const *)in, 2, frames, 44100, ref, 4, NULL, NULL, NULL));
  double worst = 0;
  /* The offline run reflects at the input's end; compare up to a second before it. */
  for (int i = 0; i < 4; i++) {
    for (size_t f = latency; f < frames - 44100; f++) {
      double e = fabs((double)got[i][f] - ref[i][f - latency]);
      worst = e > worst ? e : worst;
    }
  }
  CHECK(worst < 1e-5);
  if (worst >= 1e-5) {
    fprintf(stderr, "real time against offline: worst difference %g\n", worst);
  }

  /* In place: outputs aliasing the inputs, as many hosts hand them over. */
  OK(splitsound_rt_reset(rt));
  float *io[2];
  for (int c = 0; c < 2; c++) {
    io[c] = calloc(MAX, sizeof(float));
    memcpy(io[c], in[c], MAX * sizeof(float));
  }
  float *inplace_out[4] = {io[0], io[1], outs[2], outs[3]};
  const float *inplace_in[2] = {io[0], io[1]};
  OK(splitsound_rt_process(rt, inplace_in, 2, inplace_out, 4, MAX));
  CHECK(memcmp(io[0], got[0], MAX * sizeof(float)) == 0);

  /* NaN input is counted and processed as silence. */
  io[0][3] = NAN;
  OK(splitsound_rt_process(rt, inplace_in, 2, inplace_out, 4, MAX));
  splitsound_rt_stats stats;
  OK(splitsound_rt_get_stats(rt, &stats));
  CHECK(stats.non_finite_samples == 1 && stats.underruns == 0 && !stats.worker_failed);
  CHECK_STATUS(splitsound_rt_get_stats(rt, NULL), SPLITSOUND_STATUS_NULL_ARGUMENT);

  for (int c = 0; c < 2; c++) {
    free(io[c]);
  }
  for (int i = 0; i < 4; i++) {
    free(outs[i]);
    free(ref[i]);
  }
  free_planar(got, 4);
  free_planar(in, 2);
  splitsound_separator_free(sep);
  splitsound_rt_free(rt);
}

static void test_model(void) {
  splitsound_separator *sep = NULL;
  splitsound_options *o = NULL;
  size_t stems = 0, out_ch = 0;
  uint32_t rate = 0;
  char device[64];
  OK(splitsound_options_new(&o));
  OK(splitsound_options_set_providers(o, "cuda:0,cpu"));
  OK(splitsound_separator_new(model, o, &sep));
  OK(splitsound_separator_provider(sep, device, sizeof device, NULL));
  CHECK(strcmp(device, "cpu") == 0 || strncmp(device, "cuda", 4) == 0);
  OK(splitsound_separator_stem_count(sep, &stems));
  OK(splitsound_separator_sample_rate(sep, &rate));
  OK(splitsound_separator_output_channels(sep, 1, &out_ch));
  CHECK(stems == 4 && rate == 44100 && out_ch == 2);

  /* A mono buffer at 22.05 kHz: resampled to the model's rate and back, stereo stems. */
  const size_t frames = 22050;
  float *mono = calloc(frames, sizeof(float));
  for (size_t f = 0; f < frames; f++) {
    mono[f] = 0.3f * (float)sin(2.0 * 3.14159265 * 220.0 * (double)f / 22050.0);
  }
  float **outs = calloc(8, sizeof *outs);
  for (int i = 0; i < 8; i++) {
    outs[i] = calloc(frames, sizeof(float));
  }
  const float *in[1] = {mono};
  OK(splitsound_separator_separate(sep, in, 1, frames, 22050, outs, 8, NULL, NULL, NULL));
  double energy = 0;
  size_t non_finite = 0;
  for (int i = 0; i < 8; i++) {
    for (size_t f = 0; f < frames; f++) {
      non_finite += !isfinite(outs[i][f]);
      energy += (double)outs[i][f] * outs[i][f];
    }
  }
  CHECK(energy > 0 && non_finite == 0);
  CHECK_STATUS(splitsound_separator_separate(sep, in, 1, frames, 22050, outs, 4, NULL, NULL, NULL),
               SPLITSOUND_STATUS_CHANNEL_MISMATCH);
  free_planar(outs, 8);
  free(mono);
  splitsound_separator_free(sep);

  /* Insisting on a provider this machine lacks; a file that is not a model. */
  OK(splitsound_options_set_providers(o, "tensorrt:0"));
  OK(splitsound_options_set_strict_providers(o, true));
  CHECK_STATUS(splitsound_separator_new(model, o, &sep), SPLITSOUND_STATUS_PROVIDER_UNAVAILABLE);
  CHECK_STATUS(splitsound_separator_new(demo, NULL, &sep), SPLITSOUND_STATUS_MODEL);
  OK(splitsound_options_set_overlap(o, 1.5));
  OK(splitsound_options_set_providers(o, "cpu"));
  CHECK_STATUS(splitsound_separator_new(model, o, &sep), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  splitsound_options_free(o);

  /* The model in real time, on its worker thread; a bounce waits for it. */
  splitsound_rt *rt = NULL;
  size_t latency = 0;
  OK(splitsound_rt_new(model, NULL, &rt));
  OK(splitsound_rt_prepare(rt, 44100, 1024, 2));
  OK(splitsound_rt_latency(rt, &latency));
  OK(splitsound_rt_output_channels(rt, &out_ch));
  CHECK(latency > 1024 && out_ch == 2);
  float **in2 = demo_frames(1024);
  float *routs[8];
  for (int i = 0; i < 8; i++) {
    routs[i] = calloc(1024, sizeof(float));
  }
  /* Past the latency, every block is waited for (a bounce) and holds separated audio. */
  size_t blocks = latency / 1024 + 4;
  energy = 0;
  struct timespec pause = {0, 1000000};
  for (size_t block = 0; block < blocks; block++) {
    splitsound_rt_stats stats;
    for (int waited = 0; waited < 60000; waited++) {
      OK(splitsound_rt_get_stats(rt, &stats));
      if (stats.ready_frames >= 1024 || stats.worker_failed) {
        break;
      }
      nanosleep(&pause, NULL);
    }
    CHECK(!stats.worker_failed);
    OK(splitsound_rt_process(rt, (const float *const *)in2, 2, routs, 8, 1024));
    if (block + 2 >= blocks) {
      for (int i = 0; i < 8; i++) {
        for (size_t f = 0; f < 1024; f++) {
          energy += (double)routs[i][f] * routs[i][f];
        }
      }
    }
  }
  splitsound_rt_stats stats;
  OK(splitsound_rt_get_stats(rt, &stats));
  CHECK(stats.underruns == 0 && energy > 0);
  free_planar(in2, 2);
  for (int i = 0; i < 8; i++) {
    free(routs[i]);
  }
  splitsound_rt_free(rt);
}

/* Two built-ins and the model as one ensemble: stems matched by name (the
   model's and hpss's differ, so each passes through); bad ensembles refused. */
static void test_ensemble(void) {
  splitsound_separator *sep = NULL;
  const char *models[3] = {"builtin:hpss", "builtin:center", model};
  const double weights[3] = {2.0, 1.0, 1.0};
  size_t stems = 0;
  OK(splitsound_ensemble_new(models, 3, "avg_wave", weights, 3, NULL, &sep));
  OK(splitsound_separator_stem_count(sep, &stems));
  CHECK(stems == 7); /* harmonic, percussive, vocals (center's and the model's), accompaniment, drums, bass, other */
  char name[64];
  OK(splitsound_separator_stem_name(sep, 2, name, sizeof name, NULL));
  CHECK(strcmp(name, "vocals") == 0);
  splitsound_separator_free(sep);
  sep = NULL;
  CHECK_STATUS(splitsound_ensemble_new(models, 1, NULL, NULL, 0, NULL, &sep), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(splitsound_ensemble_new(models, 3, "avg", NULL, 0, NULL, &sep), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK(last_error_contains("median_wave"));
  CHECK_STATUS(splitsound_ensemble_new(models, 3, "min_wave", weights, 3, NULL, &sep),
               SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(splitsound_ensemble_new(models, 3, NULL, weights, 2, NULL, &sep), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(splitsound_ensemble_new(models, 3, NULL, NULL, 3, NULL, &sep), SPLITSOUND_STATUS_NULL_ARGUMENT);
  splitsound_separator *untouched = (splitsound_separator *)(void *)&stems; /* a failing call does not write `out` */
  CHECK_STATUS(splitsound_ensemble_new(NULL, 3, NULL, NULL, 0, NULL, &untouched), SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK(untouched == (splitsound_separator *)(void *)&stems);
}

/* Models by name, offline: a fresh, empty cache under TMPDIR. */
static void test_models_offline(void) {
  char cache[1024];
  snprintf(cache, sizeof cache, "%s/models-cache", tmpdir);
  CHECK(setenv("SPLITSOUND_MODELS", cache, 1) == 0);
  char path[1024];
  size_t n = 0;
  CHECK_STATUS(splitsound_model_path("uvr-mdx-net-voc-ft", path, sizeof path, &n),
               SPLITSOUND_STATUS_MODEL_NOT_INSTALLED);
  CHECK(last_error_contains("splitsound model pull uvr-mdx-net-voc-ft"));
  CHECK(last_error_contains("https://github.com/TRvlvr/model_repo/releases/download/"));
  CHECK_STATUS(splitsound_model_path("no-such-model", path, sizeof path, &n), SPLITSOUND_STATUS_UNKNOWN_MODEL);
  CHECK_STATUS(splitsound_model_path(NULL, path, sizeof path, &n), SPLITSOUND_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(splitsound_model_verify("uvr-mdx-net-voc-ft"), SPLITSOUND_STATUS_MODEL_NOT_INSTALLED);
  bool removed = true;
  OK(splitsound_model_remove("uvr-mdx-net-voc-ft", &removed));
  CHECK(!removed);
  OK(splitsound_model_remove("uvr-mdx-net-voc-ft", NULL));
  CHECK_STATUS(splitsound_model_remove("../x", NULL), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  char json[64];
  OK(splitsound_model_list_json(NULL, true, json, sizeof json, &n));
  CHECK(strcmp(json, "[]") == 0);
  /* The whole listing: ask for the size, then copy. */
  CHECK_STATUS(splitsound_model_list_json(NULL, false, NULL, 0, &n), SPLITSOUND_STATUS_BUFFER_TOO_SMALL);
  char *all = malloc(n);
  OK(splitsound_model_list_json(NULL, false, all, n, NULL));
  CHECK(strstr(all, "\"name\":\"uvr-mdx-net-inst-hq-3\"") != NULL);
  free(all);
  /* A malformed registry is a typed error; a pull of an unlisted URL refuses. */
  char reg[1024];
  snprintf(reg, sizeof reg, "%s/bad-registry.json", tmpdir);
  FILE *f = fopen(reg, "w");
  CHECK(f != NULL);
  if (f) {
    fputs("{\"registry_version\": 1", f);
    fclose(f);
  }
  CHECK_STATUS(splitsound_model_pull("x", reg, NULL, NULL, NULL), SPLITSOUND_STATUS_REGISTRY);
  CHECK_STATUS(splitsound_model_pull("https://example.invalid/x.onnx", NULL, NULL, NULL, NULL),
               SPLITSOUND_STATUS_REGISTRY);
  CHECK(last_error_contains("no registry lists this URL"));
  CHECK(strcmp(splitsound_status_name(SPLITSOUND_STATUS_CHECKSUM), "SPLITSOUND_STATUS_CHECKSUM") == 0);
  unsetenv("SPLITSOUND_MODELS");
}

/* `n` floats of a reference array (raw little-endian float32) of the SAM-Audio test data. */
static float *read_ref(const char *dir, const char *name, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/refs/%s.bin", dir, name);
  FILE *f = fopen(path, "rb");
  float *v = calloc(n, sizeof(float));
  size_t got = f ? fread(v, sizeof(float), n, f) : 0;
  if (f) {
    fclose(f);
  }
  CHECK(got == n);
  return v;
}

/* A text-prompted model (SAM-Audio): the reference run's draws give the
   reference's target and residual; a description it cannot take is refused. */
static void test_sam_audio(void) {
  char dir[4096];
  const char *slash = strrchr(model, '/');
  snprintf(dir, sizeof dir, "%.*s/../sam-audio", (int)(slash ? slash - model : 1), slash ? model : ".");
  char package[4200];
  snprintf(package, sizeof package, "%s/sam-audio-tiny.json", dir);
  const size_t n = 196799, frames = 103; /* input_1: its latent frames at 1920 samples each */
  float *input = read_ref(dir, "input_1", n);
  float *noise = read_ref(dir, "ode_noise", 2 * frames * 16);
  float *message = read_ref(dir, "watermark_message", 4 * 16);
  float *target = read_ref(dir, "target_1", frames * 1920);
  splitsound_options *o = NULL;
  splitsound_separator *sep = NULL;
  OK(splitsound_options_new(&o));
  OK(splitsound_options_set_description(o, "the piano"));
  OK(splitsound_options_set_ode_noise(o, noise + frames * 16, frames * 16)); /* item 1 of the batch */
  OK(splitsound_options_set_watermark_message(o, message + 32, 32));
  CHECK_STATUS(splitsound_options_set_ode_noise(o, NULL, 5), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  OK(splitsound_separator_new(package, o, &sep));
  char name[64];
  OK(splitsound_separator_stem_name(sep, 0, name, sizeof name, NULL));
  CHECK(strcmp(name, "target") == 0);
  float *outs[2] = {calloc(n, sizeof(float)), calloc(n, sizeof(float))};
  const float *in[1] = {input};
  OK(splitsound_separator_separate(sep, in, 1, n, 48000, outs, 2, NULL, NULL, NULL));
  double peak = 0, err = 0;
  for (size_t i = 0; i < n; i++) {
    peak = fmax(peak, fabs(target[i]));
    err = fmax(err, fabs(outs[0][i] - target[i]));
  }
  CHECK(err / peak < 1e-5);
  /* Another description on the same separator; then back, the same output. */
  float first = outs[0][n / 2];
  OK(splitsound_separator_set_description(sep, "a dog barking"));
  OK(splitsound_separator_separate(sep, in, 1, n, 48000, outs, 2, NULL, NULL, NULL));
  CHECK(outs[0][n / 2] != first);
  OK(splitsound_separator_set_description(sep, "the piano"));
  OK(splitsound_separator_separate(sep, in, 1, n, 48000, outs, 2, NULL, NULL, NULL));
  CHECK(outs[0][n / 2] == first);
  CHECK_STATUS(splitsound_separator_set_description(sep, ""), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(splitsound_separator_set_description(sep, NULL), SPLITSOUND_STATUS_NULL_ARGUMENT);
  splitsound_separator_free(sep);
  sep = NULL;
  OK(splitsound_options_set_description(o, "\xe7\x8a\xac")); /* a script the tiny tokenizer lacks */
  OK(splitsound_separator_new(package, o, &sep));
  CHECK_STATUS(splitsound_separator_separate(sep, in, 1, n, 48000, outs, 2, NULL, NULL, NULL),
               SPLITSOUND_STATUS_INVALID_ARGUMENT);
  CHECK(last_error_contains("description"));
  splitsound_separator_free(sep);
  sep = NULL;
  /* A description for a model with fixed stems. */
  CHECK_STATUS(splitsound_separator_new(model, o, &sep), SPLITSOUND_STATUS_INVALID_ARGUMENT);
  splitsound_options_free(o);
  free(outs[0]);
  free(outs[1]);
  free(input);
  free(noise);
  free(message);
  free(target);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: test_abi DEMO.flac TMPDIR [MODEL.json]\n");
    return 2;
  }
  demo = argv[1];
  tmpdir = argv[2];
  model = argc > 3 && argv[3][0] ? argv[3] : NULL;
  if (argc <= 4 || strcmp(argv[4], "--model-only") != 0) {
    test_version_and_status_names();
    test_null_arguments_and_last_error();
    test_options();
    test_decode_and_probe();
    test_separate_buffer();
    test_separate_file();
    test_query();
    test_realtime();
    test_models_offline();
  }
  if (model) {
    test_model();
    test_ensemble();
    test_sam_audio();
  } else {
    fprintf(stderr, "no model given: model tests skipped\n");
  }
  printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
