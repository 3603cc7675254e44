/*
 * plugin_loop: the shape of a DAW plugin around splitsound's real-time API.
 *
 * The host's prepare-to-play opens and prepares the separator and allocates
 * every buffer; the audio callback only calls splitsound_rt_process (no
 * allocation, no lock) and reports the latency for compensation. Here the
 * "host" renders a file in 512-frame callbacks and writes each stem,
 * latency-compensated, as 32-bit float WAV: OUTDIR/<stem>.wav.
 *
 *   plugin_loop MODEL INPUT OUTDIR
 *
 * MODEL is builtin:hpss, builtin:center, or an HT-Demucs / MDX-Net model
 * package (run on splitsound's worker thread; this offline render waits for
 * it before each callback, as a DAW's bounce may).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "splitsound.h"
#include "wav.h"

enum { BLOCK = 512 };

typedef struct {
  splitsound_rt *rt;
  size_t channels, stems, out_channels, latency;
  float **outs; /* stems × out_channels buffers of BLOCK frames, stem-major */
} plugin;

static void report(const char *what, splitsound_status s) {
  char message[1024] = "";
  splitsound_last_error(message, sizeof message, NULL);
  fprintf(stderr, "error: %s: %s: %s\n", what, splitsound_status_name(s), message);
}

/* Prepare-to-play: everything that allocates happens here. */
static splitsound_status plugin_prepare(plugin *p, const char *model, uint32_t rate, size_t channels) {
  splitsound_status s;
  memset(p, 0, sizeof *p);
  p->channels = channels;
  if ((s = splitsound_rt_new(model, NULL, &p->rt)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_prepare(p->rt, rate, BLOCK, channels)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_stem_count(p->rt, &p->stems)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_output_channels(p->rt, &p->out_channels)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_latency(p->rt, &p->latency)) != SPLITSOUND_STATUS_OK) {
    return s;
  }
  p->outs = calloc(p->stems * p->out_channels, sizeof *p->outs);
  if (!p->outs) {
    return SPLITSOUND_STATUS_OTHER;
  }
  for (size_t i = 0; i < p->stems * p->out_channels; i++) {
    if (!(p->outs[i] = calloc(BLOCK, sizeof(float)))) {
      return SPLITSOUND_STATUS_OTHER;
    }
  }
  return SPLITSOUND_STATUS_OK;
}

/* The audio callback: real-time safe. */
static splitsound_status plugin_process(plugin *p, const float *const *in, size_t frames) {
  return splitsound_rt_process(p->rt, in, p->channels, p->outs, p->stems * p->out_channels, frames);
}

static void plugin_release(plugin *p) {
  if (p->outs) {
    for (size_t i = 0; i < p->stems * p->out_channels; i++) {
      free(p->outs[i]);
    }
    free(p->outs);
  }
  splitsound_rt_free(p->rt);
  memset(p, 0, sizeof *p);
}

/* A bounce waits for the worker; a live host would output the fallback instead. */
static void wait_ready(plugin *p, size_t frames) {
  splitsound_rt_stats stats;
  struct timespec pause = {0, 200000};
  while (splitsound_rt_get_stats(p->rt, &stats) == SPLITSOUND_STATUS_OK && stats.ready_frames < frames &&
         !stats.worker_failed) {
    nanosleep(&pause, NULL);
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: plugin_loop MODEL INPUT OUTDIR\n");
    return 2;
  }
  const char *model = argv[1], *input = argv[2], *outdir = argv[3];
  splitsound_audio *audio = NULL;
  plugin p;
  wav_writer *writers = NULL;
  const float **in = NULL;
  float *silence = NULL;
  int rc = 1;
  uint32_t rate = 0;
  size_t channels = 0, frames = 0;
  splitsound_status s;
  memset(&p, 0, sizeof p);

  if ((s = splitsound_decode_file(input, NULL, &audio)) != SPLITSOUND_STATUS_OK) {
    report(input, s);
    goto done;
  }
  splitsound_audio_sample_rate(audio, &rate);
  splitsound_audio_channels(audio, &channels);
  splitsound_audio_frames(audio, &frames);
  if ((s = plugin_prepare(&p, model, rate, channels)) != SPLITSOUND_STATUS_OK) {
    report(model, s);
    goto done;
  }
  in = calloc(channels, sizeof *in);
  silence = calloc(BLOCK, sizeof *silence);
  writers = calloc(p.stems, sizeof *writers);
  if (!in || !silence || !writers) {
    goto done;
  }
  for (size_t k = 0; k < p.stems; k++) {
    char name[128], path[4096];
    splitsound_rt_stem_name(p.rt, k, name, sizeof name, NULL);
    snprintf(path, sizeof path, "%s/%s.wav", outdir, name);
    if (wav_open(&writers[k], path, rate, (uint32_t)p.out_channels) != 0) {
      fprintf(stderr, "error: cannot write %s\n", path);
      goto done;
    }
  }
  fprintf(stderr, "%s: %u Hz, %zu channels, latency %zu samples\n", model, rate, channels, p.latency);

  /* The host's transport: the file, then silence until the delayed output is out. */
  size_t to_drop = p.latency, total = frames + p.latency;
  size_t pos = 0;
  while (pos < total) {
    size_t n = total - pos < BLOCK ? total - pos : BLOCK;
    /* The block that reaches the file's end stops there; silence follows. */
    if (pos < frames && pos + n > frames) {
      n = frames - pos;
    }
    for (size_t c = 0; c < channels; c++) {
      const float *data = NULL;
      size_t len = 0;
      splitsound_audio_channel(audio, c, &data, &len);
      in[c] = pos < len ? data + pos : silence;
    }
    wait_ready(&p, n);
    if ((s = plugin_process(&p, in, n)) != SPLITSOUND_STATUS_OK) {
      fprintf(stderr, "error: process: %s\n", splitsound_status_name(s));
      goto done;
    }
    size_t skip = to_drop < n ? to_drop : n;
    to_drop -= skip;
    for (size_t k = 0; k < p.stems; k++) {
      wav_write(&writers[k], (const float *const *)(p.outs + k * p.out_channels), skip, n - skip);
    }
    pos += n;
  }
  splitsound_rt_stats stats;
  splitsound_rt_get_stats(p.rt, &stats);
  fprintf(stderr, "underruns: %llu, non-finite input samples: %llu\n", (unsigned long long)stats.underruns,
          (unsigned long long)stats.non_finite_samples);
  rc = 0;

done:
  if (writers) {
    for (size_t k = 0; k < p.stems; k++) {
      if (writers[k].file && wav_close(&writers[k]) != 0) {
        rc = 1;
      }
    }
  }
  free(writers);
  free(silence);
  free((void *)in);
  plugin_release(&p);
  splitsound_audio_free(audio);
  return rc;
}
