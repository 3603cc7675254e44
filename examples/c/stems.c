/*
 * stems: split audio files into stems with splitsound's C API, writing
 * OUTDIR/<input name>/<stem>.wav, as `splitsound separate` does.
 *
 *   stems [-q "remove the vocals"] [-b 16|24|32] [-f wav|flac] [-p cuda:0,cpu] MODEL OUTDIR INPUT...
 *
 * MODEL is a built-in (builtin:hpss, builtin:center, builtin:repet) or the
 * path of a model package's manifest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitsound.h"

/* Prints the failed call, its status and the thread's last error. */
static int fail(const char *what, splitsound_status status) {
  char message[1024];
  if (splitsound_last_error(message, sizeof message, NULL) != SPLITSOUND_STATUS_OK) {
    strcpy(message, "(message longer than 1 KiB)");
  }
  fprintf(stderr, "error: %s: %s: %s\n", what, splitsound_status_name(status), message);
  return 1;
}

/* The progress callback: userdata is the input's name. */
static void on_progress(void *userdata, splitsound_stage stage, uint64_t done, uint64_t total) {
  static const char *const names[] = {"decode", "resample", "analyse", "separate", "synthesise", "write"};
  const char *name = stage < sizeof names / sizeof names[0] ? names[stage] : "?";
  if (total > 0) {
    fprintf(stderr, "\r%s: %-10s %3d%%", (const char *)userdata, name, (int)(100 * done / total));
  }
}

static int usage(void) {
  fprintf(stderr, "usage: stems [-q QUERY] [-b 16|24|32] [-f wav|flac] [-p PROVIDERS] MODEL OUTDIR INPUT...\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *query = NULL, *providers = NULL;
  unsigned bits = 16;
  uint32_t format = SPLITSOUND_FORMAT_WAV;
  int i = 1;
  for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
    if (strcmp(argv[i], "-q") == 0) {
      query = argv[i + 1];
    } else if (strcmp(argv[i], "-b") == 0) {
      bits = (unsigned)atoi(argv[i + 1]);
    } else if (strcmp(argv[i], "-f") == 0) {
      format = strcmp(argv[i + 1], "flac") == 0 ? SPLITSOUND_FORMAT_FLAC : SPLITSOUND_FORMAT_WAV;
    } else if (strcmp(argv[i], "-p") == 0) {
      providers = argv[i + 1];
    } else {
      return usage();
    }
  }
  if (argc - i < 3) {
    return usage();
  }
  const char *model = argv[i], *outdir = argv[i + 1];

  splitsound_options *options = NULL;
  splitsound_separator *sep = NULL;
  splitsound_file_options *file_options = NULL;
  splitsound_status s;
  int rc = 1;
  if ((s = splitsound_options_new(&options)) != SPLITSOUND_STATUS_OK) {
    rc = fail("options", s);
    goto done;
  }
  if (providers && (s = splitsound_options_set_providers(options, providers)) != SPLITSOUND_STATUS_OK) {
    rc = fail("providers", s);
    goto done;
  }
  if ((s = splitsound_separator_new(model, options, &sep)) != SPLITSOUND_STATUS_OK) {
    rc = fail(model, s);
    goto done;
  }
  char name[256], device[64];
  if (splitsound_separator_name(sep, name, sizeof name, NULL) == SPLITSOUND_STATUS_OK &&
      splitsound_separator_provider(sep, device, sizeof device, NULL) == SPLITSOUND_STATUS_OK) {
    fprintf(stderr, "%s runs on %s\n", name, device);
  }
  if ((s = splitsound_file_options_new(&file_options)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_file_options_set_bits(file_options, bits)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_file_options_set_format(file_options, format)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_file_options_set_query(file_options, query)) != SPLITSOUND_STATUS_OK) {
    rc = fail("file options", s);
    goto done;
  }
  rc = 0;
  for (int k = i + 2; k < argc; k++) {
    splitsound_report *report = NULL;
    s = splitsound_separator_separate_file(sep, argv[k], outdir, file_options, on_progress, argv[k], NULL, &report);
    fputc('\n', stderr);
    if (s != SPLITSOUND_STATUS_OK) {
      rc = fail(argv[k], s);
      continue;
    }
    size_t count = 0;
    splitsound_report_stem_count(report, &count);
    for (size_t j = 0; j < count; j++) {
      char path[4096];
      if (splitsound_report_stem_path(report, j, path, sizeof path, NULL) == SPLITSOUND_STATUS_OK) {
        printf("%s\n", path);
      }
    }
    splitsound_report_free(report);
  }

done:
  splitsound_file_options_free(file_options);
  splitsound_separator_free(sep);
  splitsound_options_free(options);
  return rc;
}
