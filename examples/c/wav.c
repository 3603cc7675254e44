#include "wav.h"

#include <string.h>

static void put16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)(v & 0xff);
  p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) {
    p[i] = (unsigned char)((v >> (8 * i)) & 0xff);
  }
}

static void header(unsigned char h[44], uint32_t rate, uint32_t channels, uint64_t frames) {
  uint32_t data = (uint32_t)(frames * channels * 4);
  memcpy(h, "RIFF", 4);
  put32(h + 4, 36 + data);
  memcpy(h + 8, "WAVEfmt ", 8);
  put32(h + 16, 16);
  put16(h + 20, 3); /* IEEE float */
  put16(h + 22, (uint16_t)channels);
  put32(h + 24, rate);
  put32(h + 28, rate * channels * 4);
  put16(h + 32, (uint16_t)(channels * 4));
  put16(h + 34, 32);
  memcpy(h + 36, "data", 4);
  put32(h + 40, data);
}

int wav_open(wav_writer *w, const char *path, uint32_t rate, uint32_t channels) {
  unsigned char h[44];
  w->file = fopen(path, "wb");
  w->rate = rate;
  w->channels = channels;
  w->frames = 0;
  if (!w->file) {
    return -1;
  }
  header(h, rate, channels, 0);
  return fwrite(h, 1, sizeof h, w->file) == sizeof h ? 0 : -1;
}

int wav_write(wav_writer *w, const float *const *planar, size_t offset, size_t frames) {
  for (size_t f = 0; f < frames; f++) {
    for (uint32_t c = 0; c < w->channels; c++) {
      float x = planar[c][offset + f];
      unsigned char b[4];
      uint32_t bits;
      memcpy(&bits, &x, 4);
      put32(b, bits);
      if (fwrite(b, 1, 4, w->file) != 4) {
        return -1;
      }
    }
  }
  w->frames += frames;
  return 0;
}

int wav_close(wav_writer *w) {
  unsigned char h[44];
  int rc = 0;
  header(h, w->rate, w->channels, w->frames);
  if (fseek(w->file, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof h, w->file) != sizeof h) {
    rc = -1;
  }
  if (fclose(w->file) != 0) {
    rc = -1;
  }
  w->file = NULL;
  return rc;
}
