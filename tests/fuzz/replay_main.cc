// Replays fuzzer inputs through LLVMFuzzerTestOneInput without libFuzzer, so
// `bazel test` exercises every fuzz target on its seeds (and on any files or
// directories given as arguments, e.g. a corpus or a crash to reproduce).

#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

// Seeds compiled into the target (defined next to each fuzz target).
extern const char* const kFuzzSeeds[];
extern const size_t kNumFuzzSeeds;

namespace {

int RunFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return 1;
}

int RunPath(const std::string& path) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "replay: cannot stat %s\n", path.c_str());
    return 0;
  }
  if (!S_ISDIR(st.st_mode)) return RunFile(path);
  int n = 0;
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    n += RunPath(path + "/" + e->d_name);
  }
  closedir(dir);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 0;
  for (size_t i = 0; i < kNumFuzzSeeds; ++i) {
    const std::string seed(kFuzzSeeds[i]);
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    ++n;
    // Every prefix too: truncated inputs are the classic parser bug.
    for (size_t len = 0; len < seed.size(); ++len) {
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(seed.data()), len);
      ++n;
    }
  }
  for (int i = 1; i < argc; ++i) n += RunPath(argv[i]);
  std::printf("replayed %d inputs\n", n);
  return 0;
}
