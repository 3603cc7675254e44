/* A minimal 32-bit float WAV writer for the examples (splitsound writes its
 * own files through splitsound_separator_separate_file; a plugin has only
 * buffers). */
#ifndef SPLITSOUND_EXAMPLE_WAV_H
#define SPLITSOUND_EXAMPLE_WAV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
  FILE *file;
  uint32_t rate;
  uint32_t channels;
  uint64_t frames;
} wav_writer;

/* Opens `path` for `channels` channels at `rate`; returns 0 on success. */
int wav_open(wav_writer *w, const char *path, uint32_t rate, uint32_t channels);
/* Appends `frames` frames from planar channels. */
int wav_write(wav_writer *w, const float *const *planar, size_t offset, size_t frames);
/* Patches the header's sizes and closes; returns 0 on success. */
int wav_close(wav_writer *w);

#endif
