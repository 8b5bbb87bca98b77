// offload-grind: command-line front end; see grind.h.

#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "tools/bench/arg_reader.h"
#include "tools/bench/socket_util.h"
#include "tools/grind/grind.h"

namespace {

constexpr char kUsage[] = R"(usage:
  offload-grind server [--bind ADDR] [--port N] [--port-file FILE]
                       [--sessions N] [--timeout SEC] [--verbose]
  offload-grind client --host ADDR --port N [--udp] [--start N] [--end N]
                       [--increment N] [--wraps N] [--seed N] [--timeout SEC]
                       [--verbose]

Byte-integrity test for stream and datagram sockets (after VMMC sockgrind).
For every message size from --start to --end in steps of --increment the
client sends --wraps x 64 KiB of a position-dependent byte pattern and the
server verifies every byte. Buffer offsets (0..7), send splits and receive
lengths are varied so data crosses every alignment. With --udp the data goes
as datagrams (message boundaries are checked too); the TCP connection then
only carries the handshake and acknowledgements.

Both sides print "LOOKS GOOD" when every byte matched, or the first mismatch:
  MISMATCH: size S, message M, byte B of the message (stream offset O):
  expected 0xEE, got 0xGG

server options:
  --bind ADDR       IPv4 address to listen on (default 127.0.0.1)
  --port N          TCP port (default 0: the kernel picks; printed on stdout)
  --port-file FILE  also write the port to FILE (atomically) once listening
  --sessions N      serve N clients then exit (default 1; 0 = forever)
client options:
  --host ADDR       server address (default 127.0.0.1)
  --port N          server port (required)
  --udp             test UDP datagrams instead of a TCP stream
  --start/--end/--increment N   message sizes (default 1..1500 step 37;
                    TCP up to 4 MiB, UDP up to 65507)
  --wraps N         64 KiB units sent per size (default 4)
  --seed N          pattern seed (default 1)
common:
  --timeout SEC     give up when the peer is silent this long (default 30)
  --verbose, -v     print a line per size
  --help, -h        this text

Run it under the offload launcher to test the offloaded path, e.g.
  offload -- offload-grind server --port 5555 &
  offload -- offload-grind client --port 5555 --udp

exit status: 0 LOOKS GOOD, 1 mismatch or I/O error, 2 usage error
)";

int Usage(const std::string& error) {
  std::cerr << "offload-grind: " << error << "\n"
            << "run 'offload-grind --help' for usage\n";
  return offload::tools::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  using offload::tools::ArgReader;
  namespace grind = offload::tools::grind;
  ArgReader args(argc, argv);
  std::string mode, bind = "127.0.0.1", port_file;
  uint64_t port = 0, sessions = 1, timeout = 30;
  bool have_port = false;
  grind::ClientOptions client;
  grind::ServerOptions server;
  uint64_t start = client.plan.start, end = client.plan.end,
           increment = client.plan.increment, wraps = client.plan.wraps,
           seed = client.plan.seed;
  bool verbose = false, udp = false;
  while (args.Next()) {
    std::string positional;
    if (args.Flag("--help", "-h")) {
      std::cout << kUsage;
      return offload::tools::kExitOk;
    } else if (mode.empty() && args.Positional(&positional)) {
      mode = positional;
    } else if (args.Value("--bind", "", &bind)) {
    } else if (args.Value("--host", "", &client.host)) {
    } else if (args.Uint("--port", "-p", 0, 65535, &port)) {
      have_port = true;
    } else if (args.Value("--port-file", "", &port_file)) {
    } else if (args.Uint("--sessions", "", 0, UINT32_MAX, &sessions)) {
    } else if (args.Uint("--timeout", "", 1, 86400, &timeout)) {
    } else if (args.Flag("--udp", "-u")) {
      udp = true;
    } else if (args.Uint("--start", "", 1, grind::kMaxTcpMessage, &start)) {
    } else if (args.Uint("--end", "", 1, grind::kMaxTcpMessage, &end)) {
    } else if (args.Uint("--increment", "", 1, grind::kMaxTcpMessage,
                         &increment)) {
    } else if (args.Uint("--wraps", "", 1, grind::kMaxWraps, &wraps)) {
    } else if (args.Uint("--seed", "", 0, UINT64_MAX, &seed)) {
    } else if (args.Flag("--verbose", "-v")) {
      verbose = true;
    } else {
      args.Unknown();
    }
  }
  if (!args.error().empty()) return Usage(args.error());
  if (mode != "server" && mode != "client") {
    return Usage(mode.empty() ? "missing mode: 'server' or 'client'"
                              : absl::StrCat("unknown mode '", mode,
                                             "': expected server or client"));
  }
  if (mode == "server") {
    server.sessions = sessions;
    server.io_timeout = absl::Seconds(timeout);
    server.verbose = verbose;
    absl::StatusOr<offload::tools::UniqueFd> listener =
        offload::tools::BindSocket(SOCK_STREAM, bind,
                                   static_cast<uint16_t>(port));
    if (!listener.ok()) {
      if (absl::IsInvalidArgument(listener.status())) {
        return Usage(std::string(listener.status().message()));
      }
      std::cerr << "offload-grind: " << listener.status().message() << "\n";
      return offload::tools::kExitFailure;
    }
    absl::StatusOr<uint16_t> bound =
        offload::tools::LocalPort(listener->get());
    if (!bound.ok()) {
      std::cerr << "offload-grind: " << bound.status().message() << "\n";
      return offload::tools::kExitFailure;
    }
    std::cout << "listening on " << bind << ":" << *bound << std::endl;
    if (!port_file.empty()) {
      if (absl::Status s = offload::tools::WritePortFile(port_file, *bound);
          !s.ok()) {
        std::cerr << "offload-grind: " << s.message() << "\n";
        return offload::tools::kExitFailure;
      }
    }
    absl::Status s = grind::RunServer(listener->get(), server, std::cout);
    return s.ok() ? offload::tools::kExitOk : offload::tools::kExitFailure;
  }
  if (!have_port || port == 0) return Usage("client needs --port N (N > 0)");
  client.port = static_cast<uint16_t>(port);
  client.io_timeout = absl::Seconds(timeout);
  client.verbose = verbose;
  client.plan.transport = udp ? grind::Transport::kUdp : grind::Transport::kTcp;
  client.plan.start = static_cast<uint32_t>(start);
  client.plan.end = static_cast<uint32_t>(end);
  client.plan.increment = static_cast<uint32_t>(increment);
  client.plan.wraps = static_cast<uint32_t>(wraps);
  client.plan.seed = seed;
  if (absl::Status s = grind::ValidatePlan(client.plan); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  if (absl::StatusOr<in_addr> a = offload::tools::ParseIpv4(client.host);
      !a.ok()) {
    return Usage(std::string(a.status().message()));
  }
  absl::Status s = grind::RunClient(client, std::cout);
  if (s.ok()) {
    std::cout << "LOOKS GOOD" << std::endl;
    return offload::tools::kExitOk;
  }
  std::cout << s.message() << std::endl;
  return offload::tools::kExitFailure;
}
