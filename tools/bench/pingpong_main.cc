// offload-pingpong server ADDR PORT [--v6only]
// offload-pingpong pingpong ADDR PORT [SIZE [SECONDS]]   (default 64 B, 5 s)
// offload-pingpong throughput ADDR PORT [SIZE [SECONDS]] (default 100 B, 5 s)
// ADDR: IPv4 or IPv6 (127.0.0.1, ::1, ::ffff:127.0.0.1, ::).

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "tools/bench/pingpong.h"

int main(int argc, char** argv) {
  using namespace offload::tools;
  if (argc < 4) {
    fprintf(stderr,
            "usage: %s server ADDR PORT [--v6only] | pingpong|throughput ADDR PORT [SIZE "
            "[SECONDS]]\n",
            argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  absl::StatusOr<Endpoint> ep = ParseEndpoint(argv[2], static_cast<uint16_t>(atoi(argv[3])));
  if (!ep.ok()) {
    fprintf(stderr, "%s\n", std::string(ep.status().message()).c_str());
    return 2;
  }
  if (mode == "server") {
    const absl::Status st = Serve(*ep, argc > 4 && strcmp(argv[4], "--v6only") == 0);
    fprintf(stderr, "server: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  const double seconds = argc > 5 ? atof(argv[5]) : 5.0;
  if (mode == "pingpong") {
    const size_t size = argc > 4 ? static_cast<size_t>(atoi(argv[4])) : 64;
    absl::StatusOr<PingPongResult> r = PingPong(*ep, size, seconds);
    if (!r.ok()) {
      fprintf(stderr, "pingpong: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    printf("pingpong size=%zu round_trips=%llu p50_us=%.3f p99_us=%.3f\n", size,
           static_cast<unsigned long long>(r->round_trips), r->p50_us, r->p99_us);
    return 0;
  }
  if (mode == "throughput") {
    const size_t size = argc > 4 ? static_cast<size_t>(atoi(argv[4])) : 100;
    absl::StatusOr<double> r = Throughput(*ep, size, seconds);
    if (!r.ok()) {
      fprintf(stderr, "throughput: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    printf("throughput size=%zu msg_per_s=%.0f\n", size, *r);
    return 0;
  }
  fprintf(stderr, "unknown mode '%s'\n", mode.c_str());
  return 2;
}
