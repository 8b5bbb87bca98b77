// The echo server of the ACE paper, on the typed socket API: an iterative
// server that accepts one connection at a time and sends back every byte
// it receives. The part between the README markers is quoted verbatim in
// the top-level README.md (tests/api:echo_example_test checks that).
//
//   echo_server [PORT [COUNT]]   listens on 127.0.0.1:PORT (0: the kernel
//                                picks; default 5050), prints "listening on
//                                ADDR", serves COUNT connections (default:
//                                no limit), then exits

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "api/sock.h"

namespace sock = offload::sock;

// [README echo server]
// Echoes every byte back until the peer closes. Any stream type will do:
// sock::Stream (TCP), sock::LocalStream (AF_UNIX).
template <class Stream>
void Echo(Stream& stream) {
  char buf[4096];
  sock::IoResult n;
  while ((n = stream.recv(buf, sizeof(buf))).ok() && n.bytes() > 0) {
    if (!stream.send_n(buf, n.bytes()).ok()) return;
  }
}

// Serves `count` connections, one after the other.
template <class Acceptor>
void Serve(Acceptor& acceptor, int count) {
  for (int i = 0; i < count; ++i) {
    auto stream = acceptor.accept();  // a Result<Stream>
    if (stream.ok()) Echo(*stream);
  }
}
// [README end]

int main(int argc, char** argv) {
  const int port = argc > 1 ? atoi(argv[1]) : 5050;
  const int count = argc > 2 ? atoi(argv[2]) : INT_MAX;
  auto acceptor = sock::Acceptor::Open(sock::InetAddr::Loopback4(port));
  if (!acceptor.ok()) {
    fprintf(stderr, "echo_server: %s\n", acceptor.status().ToString().c_str());
    return 1;
  }
  printf("listening on %s\n", acceptor->local_addr()->ToString().c_str());
  fflush(stdout);
  Serve(*acceptor, count);
  return 0;
}
