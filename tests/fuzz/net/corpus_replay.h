// Replays every file of a checked-in fuzz corpus directory (relative to the
// test's runfiles root) through LLVMFuzzerTestOneInput. Returns the count.
#ifndef OFFLOAD_TESTS_FUZZ_NET_CORPUS_REPLAY_H_
#define OFFLOAD_TESTS_FUZZ_NET_CORPUS_REPLAY_H_

#include <dirent.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace offload::fuzz {

inline int ReplayCorpus(const std::string& dir) {
  int n = 0;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(dir + "/" + e->d_name, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ++n;
  }
  closedir(d);
  return n;
}

}  // namespace offload::fuzz

#endif  // OFFLOAD_TESTS_FUZZ_NET_CORPUS_REPLAY_H_
