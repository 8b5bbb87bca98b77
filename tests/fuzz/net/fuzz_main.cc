// Stand-alone driver for the libFuzzer entry points of tests/fuzz/{net,tcp}
// when a fuzzer binary is built without -fsanitize=fuzzer: replays every file
// named on the command line. Under --config=fuzz the libFuzzer runtime's
// (strong) main is linked and this weak one is ignored, so the same
// cc_binary serves both builds.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

extern "C" __attribute__((weak)) int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot open %s\n", argv[i]);
      return 1;
    }
    std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  std::fprintf(stderr, "replayed %d input(s)\n", argc - 1);
  return 0;
}
