/*
 * Checks of the LV2 plugin's renders against the library itself (scripts/test-lv2.sh):
 *
 *   lv2_check to-wav IN OUT.wav
 *       decodes IN (any format splitsound reads) into a 32-bit float WAV, the
 *       input the hosts render (they write their output in the input's format);
 *   lv2_check expect MODEL IN.wav STEM MODE MIX OUT.wav
 *       what the plugin must output for that input and those settings,
 *       computed with the library's own real-time path in this process: the
 *       input through splitsound_rt_process in blocks, the dry input delayed by
 *       the reported latency, the stem (MODE 0) or the delayed input minus it
 *       (MODE 1), mixed by MIX; a model's worker is waited for (a bounce);
 *   lv2_check compare A.wav B.wav TOLERANCE [LATENCY]
 *       the largest difference between two renders (exit 1 above TOLERANCE);
 *       with LATENCY, A's first LATENCY frames must also be silent;
 *   lv2_check sum A.wav B.wav REF.wav TOLERANCE
 *       A + B against REF (isolate + remove against the delayed input).
 */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "splitsound.h"
#include "wav.h"

enum { BLOCK = 700 }; /* not the plugin's 1024: the real-time path does not depend on the block size */

static int fail(const char *what, splitsound_status s) {
  char m[1024] = "";
  splitsound_last_error(m, sizeof m, NULL);
  fprintf(stderr, "lv2_check: %s: %s (%s)\n", what, m, splitsound_status_name(s));
  return 1;
}

static splitsound_audio *load(const char *path) {
  splitsound_audio *a = NULL;
  splitsound_status s = splitsound_decode_file(path, NULL, &a);
  if (s != SPLITSOUND_STATUS_OK) {
    fail(path, s);
    return NULL;
  }
  return a;
}

static int write_planar(const char *path, uint32_t rate, const float *const *ch, size_t channels, size_t frames) {
  wav_writer w;
  if (wav_open(&w, path, rate, (uint32_t)channels) != 0 || wav_write(&w, ch, 0, frames) != 0 || wav_close(&w) != 0) {
    fprintf(stderr, "lv2_check: cannot write %s\n", path);
    return 1;
  }
  return 0;
}

static int to_wav(const char *in, const char *out) {
  splitsound_audio *a = load(in);
  if (!a) {
    return 1;
  }
  uint32_t rate = 0;
  size_t channels = 0, frames = 0;
  splitsound_audio_sample_rate(a, &rate);
  splitsound_audio_channels(a, &channels);
  splitsound_audio_frames(a, &frames);
  const float *ch[8] = {0};
  for (size_t c = 0; c < channels && c < 8; c++) {
    splitsound_audio_channel(a, c, &ch[c], &frames);
  }
  int rc = write_planar(out, rate, ch, channels, frames);
  splitsound_audio_free(a);
  return rc;
}

static int expect(const char *model, const char *in, size_t stem, int mode, float mix, const char *out) {
  splitsound_audio *a = load(in);
  if (!a) {
    return 1;
  }
  uint32_t rate = 0;
  size_t channels = 0, frames = 0, stems = 0, out_ch = 0, latency = 0;
  splitsound_audio_sample_rate(a, &rate);
  splitsound_audio_channels(a, &channels);
  splitsound_audio_frames(a, &frames);
  if (channels != 2) {
    fprintf(stderr, "lv2_check: %s is not stereo\n", in);
    return 1;
  }
  const float *x[2];
  splitsound_audio_channel(a, 0, &x[0], &frames);
  splitsound_audio_channel(a, 1, &x[1], &frames);
  splitsound_rt *rt = NULL;
  splitsound_status s;
  if ((s = splitsound_rt_new(model, NULL, &rt)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_prepare(rt, rate, BLOCK, 2)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_stem_count(rt, &stems)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_output_channels(rt, &out_ch)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_latency(rt, &latency)) != SPLITSOUND_STATUS_OK) {
    return fail(model, s);
  }
  if (stem >= stems) {
    stem = stems - 1;
  }
  float **outs = calloc(stems * out_ch, sizeof *outs);
  float *y[2] = {calloc(frames, sizeof(float)), calloc(frames, sizeof(float))};
  for (size_t i = 0; i < stems * out_ch; i++) {
    outs[i] = calloc(BLOCK, sizeof(float));
  }
  struct timespec pause = {0, 200000};
  for (size_t off = 0; off < frames; off += BLOCK) {
    size_t n = frames - off < BLOCK ? frames - off : BLOCK;
    splitsound_rt_stats st;
    while (splitsound_rt_get_stats(rt, &st) == SPLITSOUND_STATUS_OK && st.ready_frames < n && !st.worker_failed) {
      nanosleep(&pause, NULL);
    }
    const float *in2[2] = {x[0] + off, x[1] + off};
    if ((s = splitsound_rt_process(rt, in2, 2, outs, stems * out_ch, n)) != SPLITSOUND_STATUS_OK) {
      return fail("process", s);
    }
    for (int c = 0; c < 2; c++) {
      for (size_t i = 0; i < n; i++) {
        size_t t = off + i;
        float dry = t >= latency ? x[c][t - latency] : 0.0f;
        float wet = outs[stem * out_ch + (size_t)c][i];
        float v = mode == 1 ? dry - wet : wet;
        y[c][t] = mix >= 1.0f ? v : mix <= 0.0f ? dry : dry + mix * (v - dry);
      }
    }
  }
  fprintf(stderr, "lv2_check: %s: latency %zu frames\n", model, latency);
  int rc = write_planar(out, rate, (const float *const *)y, 2, frames);
  for (size_t i = 0; i < stems * out_ch; i++) {
    free(outs[i]);
  }
  free(outs);
  free(y[0]);
  free(y[1]);
  splitsound_rt_free(rt);
  splitsound_audio_free(a);
  return rc;
}

/* The largest difference of A (+ B) against REF, channel by channel. */
static int compare(const char *pa, const char *pb, const char *pref, double tol, long silent) {
  splitsound_audio *a = load(pa), *b = pb ? load(pb) : NULL, *r = load(pref);
  if (!a || (pb && !b) || !r) {
    return 1;
  }
  size_t ca = 0, cr = 0, fa = 0, fr = 0;
  splitsound_audio_channels(a, &ca);
  splitsound_audio_channels(r, &cr);
  splitsound_audio_frames(a, &fa);
  splitsound_audio_frames(r, &fr);
  if (ca != cr || fa != fr) {
    fprintf(stderr, "lv2_check: %s is %zu × %zu, %s %zu × %zu\n", pa, ca, fa, pref, cr, fr);
    return 1;
  }
  double worst = 0, peak = 0;
  size_t loud_early = 0;
  for (size_t c = 0; c < ca; c++) {
    const float *x, *z, *y = NULL;
    size_t n;
    splitsound_audio_channel(a, c, &x, &n);
    splitsound_audio_channel(r, c, &z, &n);
    if (b) {
      splitsound_audio_channel(b, c, &y, &n);
    }
    for (size_t i = 0; i < n; i++) {
      double v = (double)x[i] + (y ? (double)y[i] : 0.0);
      double d = fabs(v - (double)z[i]);
      worst = isnan(d) ? INFINITY : (d > worst ? d : worst);
      peak = fabs((double)z[i]) > peak ? fabs((double)z[i]) : peak;
      loud_early += silent >= 0 && (long)i < silent && x[i] != 0.0f;
    }
  }
  printf("%s%s%s vs %s: max difference %.3g (peak %.3g)\n", pa, b ? " + " : "", b ? pb : "", pref, worst, peak);
  splitsound_audio_free(a);
  splitsound_audio_free(b);
  splitsound_audio_free(r);
  if (loud_early) {
    fprintf(stderr, "lv2_check: %zu samples before the latency are not silent\n", loud_early);
    return 1;
  }
  if (peak == 0) {
    fprintf(stderr, "lv2_check: the reference is silent: nothing compared\n");
    return 1;
  }
  return worst <= tol ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "to-wav")) {
    return to_wav(argv[2], argv[3]);
  }
  if (argc == 8 && !strcmp(argv[1], "expect")) {
    return expect(argv[2], argv[3], (size_t)atol(argv[4]), atoi(argv[5]), (float)atof(argv[6]), argv[7]);
  }
  if ((argc == 5 || argc == 6) && !strcmp(argv[1], "compare")) {
    return compare(argv[2], NULL, argv[3], atof(argv[4]), argc == 6 ? atol(argv[5]) : -1);
  }
  if (argc == 6 && !strcmp(argv[1], "sum")) {
    return compare(argv[2], argv[3], argv[4], atof(argv[5]), -1);
  }
  fprintf(stderr, "usage: see the comment at the top of lv2_check.c\n");
  return 2;
}
