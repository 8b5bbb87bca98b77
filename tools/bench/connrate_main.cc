// offload-connrate: command-line front end; see connrate.h.

#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "tools/bench/connrate.h"
#include "tools/bench/arg_reader.h"
#include "tools/bench/socket_util.h"

namespace {

constexpr char kUsage[] = R"(usage:
  offload-connrate server [--bind ADDR] [--port N] [--port-file FILE]
                          [--count N] [--idle-timeout SEC]
  offload-connrate client [--host ADDR] --port N [--count N] [--duration SEC]
                          [--connectors K]

Measures TCP connection setup and teardown. One cycle is: client connect,
server accept, server close, client reads end of stream, client close. The
client runs cycles back to back until --count cycles (default 10000) or
--duration seconds (default 5), from K threads at once (--connectors,
default 1), and prints

  connrate: connections=N seconds=S conn_per_s=R

The server accepts and closes until --count connections (default: no limit)
or until idle for --idle-timeout seconds; with --port 0 the kernel picks
the port, printed as "listening on ADDR:PORT" (and written to --port-file).

exit status: 0 ok, 1 a cycle failed, 2 usage error
)";

int Usage(const std::string& error) {
  std::cerr << "offload-connrate: " << error
            << "\nrun 'offload-connrate --help' for usage\n";
  return offload::tools::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  namespace tools = offload::tools;
  namespace connrate = offload::tools::connrate;
  tools::ArgReader args(argc, argv);
  std::string mode, bind = "127.0.0.1", port_file;
  connrate::ClientOptions client;
  uint64_t port = 0, count = 0, duration = 5, idle = 0, connectors = 1;
  bool have_count = false;
  while (args.Next()) {
    std::string arg;
    if (args.Flag("--help", "-h")) {
      std::cout << kUsage;
      return tools::kExitOk;
    } else if (mode.empty() && args.Positional(&arg)) {
      mode = arg;
    } else if (args.Value("--bind", "", &bind)) {
    } else if (args.Value("--host", "", &client.host)) {
    } else if (args.Uint("--port", "-p", 0, 65535, &port)) {
    } else if (args.Value("--port-file", "", &port_file)) {
    } else if (args.Uint("--count", "-n", 1, uint64_t{1} << 40, &count)) {
      have_count = true;
    } else if (args.Uint("--duration", "", 1, 3600, &duration)) {
    } else if (args.Uint("--connectors", "", 1, 256, &connectors)) {
    } else if (args.Uint("--idle-timeout", "", 1, 86400, &idle)) {
    } else {
      args.Unknown();
    }
  }
  if (!args.error().empty()) return Usage(args.error());
  if (mode == "client") {
    if (port == 0) return Usage("client needs --port N (N > 0)");
    if (absl::StatusOr<in_addr> a = tools::ParseIpv4(client.host); !a.ok()) {
      return Usage(std::string(a.status().message()));
    }
    client.port = static_cast<uint16_t>(port);
    if (have_count) client.count = count;
    client.duration = absl::Seconds(duration);
    client.connectors = static_cast<uint32_t>(connectors);
    absl::StatusOr<connrate::ClientResult> r = connrate::RunClient(client);
    if (!r.ok()) {
      std::cerr << "offload-connrate: " << r.status().message() << "\n";
      return tools::kExitFailure;
    }
    std::cout << connrate::FormatResult(*r) << std::endl;
    return tools::kExitOk;
  }
  if (mode != "server") {
    return Usage(mode.empty() ? "missing mode: 'server' or 'client'"
                              : absl::StrCat("unknown mode '", mode, "'"));
  }
  absl::StatusOr<tools::UniqueFd> listener =
      tools::BindSocket(SOCK_STREAM, bind, static_cast<uint16_t>(port), 1024);
  if (!listener.ok()) {
    if (absl::IsInvalidArgument(listener.status())) {
      return Usage(std::string(listener.status().message()));
    }
    std::cerr << "offload-connrate: " << listener.status().message() << "\n";
    return tools::kExitFailure;
  }
  absl::StatusOr<uint16_t> bound = tools::LocalPort(listener->get());
  if (!bound.ok()) {
    std::cerr << "offload-connrate: " << bound.status().message() << "\n";
    return tools::kExitFailure;
  }
  std::cout << "listening on " << bind << ":" << *bound << std::endl;
  if (!port_file.empty()) {
    if (absl::Status s = tools::WritePortFile(port_file, *bound); !s.ok()) {
      std::cerr << "offload-connrate: " << s.message() << "\n";
      return tools::kExitFailure;
    }
  }
  connrate::ServerOptions server;
  server.count = count;
  if (idle > 0) server.idle_timeout = absl::Seconds(idle);
  absl::StatusOr<uint64_t> served = connrate::RunServer(listener->get(), server);
  if (!served.ok()) {
    std::cerr << "offload-connrate: " << served.status().message() << "\n";
    return tools::kExitFailure;
  }
  std::cout << "served " << *served << " connections" << std::endl;
  return tools::kExitOk;
}
