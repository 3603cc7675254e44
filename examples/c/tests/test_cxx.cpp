// The header compiles as C++ (extern "C", enums with a fixed underlying type)
// and works from C++ with RAII.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "splitsound.h"

namespace {

struct SeparatorDeleter {
  void operator()(splitsound_separator *s) const { splitsound_separator_free(s); }
};
using Separator = std::unique_ptr<splitsound_separator, SeparatorDeleter>;

struct AudioDeleter {
  void operator()(splitsound_audio *a) const { splitsound_audio_free(a); }
};
using Audio = std::unique_ptr<splitsound_audio, AudioDeleter>;

std::string last_error() {
  size_t needed = 0;
  splitsound_last_error(nullptr, 0, &needed);
  std::string s(needed, '\0');
  splitsound_last_error(&s[0], s.size(), &needed);
  s.resize(needed);
  return s;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: test_cxx DEMO.flac\n");
    return 2;
  }
  int failures = 0;
  splitsound_separator *raw = nullptr;
  if (splitsound_separator_new("builtin:center", nullptr, &raw) != SPLITSOUND_STATUS_OK) {
    std::fprintf(stderr, "separator: %s\n", last_error().c_str());
    return 1;
  }
  Separator sep(raw);
  splitsound_audio *araw = nullptr;
  if (splitsound_decode_file(argv[1], nullptr, &araw) != SPLITSOUND_STATUS_OK) {
    std::fprintf(stderr, "decode: %s\n", last_error().c_str());
    return 1;
  }
  Audio audio(araw);
  size_t frames = 0, stems = 0;
  splitsound_audio_frames(audio.get(), &frames);
  splitsound_separator_stem_count(sep.get(), &stems);
  frames = frames < 44100 ? frames : 44100;
  std::vector<const float *> in(2);
  for (size_t c = 0; c < 2; c++) {
    size_t n = 0;
    splitsound_audio_channel(audio.get(), c, &in[c], &n);
  }
  std::vector<std::vector<float>> out(stems * 2, std::vector<float>(frames));
  std::vector<float *> ptrs;
  for (auto &o : out) ptrs.push_back(o.data());
  splitsound_status s = splitsound_separator_separate(sep.get(), in.data(), 2, frames, 44100, ptrs.data(), ptrs.size(),
                                                      nullptr, nullptr, nullptr);
  if (s != SPLITSOUND_STATUS_OK) {
    std::fprintf(stderr, "separate: %s\n", last_error().c_str());
    failures++;
  }
  s = splitsound_separator_separate(sep.get(), in.data(), 2, frames, 44100, ptrs.data(), 1, nullptr, nullptr, nullptr);
  if (s != SPLITSOUND_STATUS_CHANNEL_MISMATCH || last_error().empty()) failures++;
  std::printf("c++: %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
