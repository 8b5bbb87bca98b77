// The echo client of the ACE paper, on the typed socket API: sends each
// line of its input to the echo server and prints what comes back. The
// part between the README markers is quoted verbatim in the top-level
// README.md (tests/api:echo_example_test checks that).
//
//   echo_client [ADDR:PORT]      default 127.0.0.1:5050; reads stdin,
//                                exits 1 if the connection fails or the
//                                echo is short

#include <chrono>
#include <cstdio>
#include <cstring>

#include "api/sock.h"

namespace sock = offload::sock;

// [README echo client]
// Sends each line of `in` and writes the echo to `out`.
template <class Stream>
bool Chat(Stream& stream, FILE* in, FILE* out) {
  char line[4096], echo[4096];
  while (fgets(line, sizeof(line), in) != nullptr) {
    const size_t len = strlen(line);
    if (!stream.send_n(line, len).ok()) return false;
    if (stream.recv_n(echo, len).bytes() != len) return false;
    fwrite(echo, 1, len, out);
  }
  return true;
}

int main(int argc, char** argv) {
  auto server = sock::InetAddr::Parse(argc > 1 ? argv[1] : "127.0.0.1:5050");
  if (!server.ok()) return 2;
  auto stream = sock::Connector().connect(*server, {std::chrono::seconds(5)});
  if (!stream.ok()) {
    fprintf(stderr, "echo_client: %s\n", stream.status().ToString().c_str());
    return 1;
  }
  return Chat(*stream, stdin, stdout) ? 0 : 1;
}
// [README end]
