// ttcp: command-line front end in the classic style; see ttcp.h.

#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "tools/bench/arg_reader.h"
#include "tools/bench/socket_util.h"
#include "tools/ttcp/ttcp.h"
#include "tools/ttcp/ttcp_cxx.h"

namespace {

constexpr char kUsage[] = R"(usage:
  ttcp -t [options] HOST        transmit to HOST
  ttcp -r [options]             receive (one connection, then exit)

Classic TCP throughput test. The transmitter writes -n buffers of -l bytes
(a printable pattern); the receiver reads until end of stream. Both print
the classic lines and a machine-readable one:

  ttcp-t: 16777216 bytes in 0.012 real seconds = ... KB/sec = ... Mbit/s +++
  ttcp-result role=t bytes=16777216 seconds=0.012 mbit_per_s=... calls=2048 ...

options (values are separate words: -l 8192; k and m suffixes allowed):
  -l, --buflen N     bytes per write/read (default 8192)
  -n, --nbuf N       buffers to transmit (default 2048)
  -p, --port N       port (default 5001; -r -p 0 lets the kernel pick and
                     prints "listening on ADDR:PORT")
  -b, --sockbuf N    SO_SNDBUF/SO_RCVBUF before connect/listen (default:
                     kernel's); the granted size is reported
  -D, --nodelay      TCP_NODELAY on the transmitter
  --congestion NAME  TCP_CONGESTION on the transmitter (cubic, reno, bbr...);
                     compare kernel and offload senders with the same one
  -V, --verify       receiver checks every byte of the pattern
  --bind ADDR        receiver address (default 127.0.0.1)
  --port-file FILE   receiver: write the port to FILE once listening
  --timeout SEC      fail when the peer is silent this long (default 60)
  --api c|cxx        c: plain BSD socket calls (default); cxx: the typed
                     C++ socket API (//api: Connector, Acceptor, Stream).
                     Same transfer, options and output: compare the two to
                     measure the wrappers (both ends should use the same)
  -h, --help         this text

Buffer-size sweep, e.g.:
  for l in 1k 4k 16k 64k; do ttcp -r -p 0 --port-file p & \
    ttcp -t -l $l -n 4096 -p $(cat p) 127.0.0.1; wait; done
(wait for the port file to appear before starting the transmitter).

exit status: 0 ok, 1 transfer error, 2 usage error
)";

int Usage(const std::string& error) {
  std::cerr << "ttcp: " << error << "\nrun 'ttcp --help' for usage\n";
  return offload::tools::kExitUsage;
}

// What the command line asked for, once parsed and checked.
struct Command {
  offload::tools::ttcp::Options options;
  bool transmit = false;
  std::string bind = "127.0.0.1";
  std::string port_file;
};

// Runs the transfer with one of the interchangeable back ends (CApi,
// CxxApi): everything the user sees is the same for both.
template <class Api>
int Run(const Command& cmd) {
  namespace tools = offload::tools;
  namespace ttcp = offload::tools::ttcp;
  const ttcp::Options& options = cmd.options;
  if (cmd.transmit) {
    std::cout << "ttcp-t: buflen=" << options.buflen
              << ", nbuf=" << options.nbuf << ", port=" << options.port
              << ", sockbuf=" << options.sockbuf << "  tcp  -> " << options.host
              << std::endl;
    absl::StatusOr<ttcp::Result> r = Api::Transmit(options);
    if (!r.ok()) {
      std::cerr << "ttcp-t: " << r.status().message() << "\n";
      return tools::kExitFailure;
    }
    std::cout << ttcp::FormatReport('t', options, *r) << std::flush;
    return tools::kExitOk;
  }
  absl::StatusOr<typename Api::Listener> listener =
      Api::Listen(cmd.bind, options);
  if (!listener.ok()) {
    if (absl::IsInvalidArgument(listener.status())) {
      return Usage(std::string(listener.status().message()));
    }
    std::cerr << "ttcp-r: " << listener.status().message() << "\n";
    return tools::kExitFailure;
  }
  absl::StatusOr<uint16_t> bound = Api::Port(*listener);
  if (!bound.ok()) {
    std::cerr << "ttcp-r: " << bound.status().message() << "\n";
    return tools::kExitFailure;
  }
  std::cout << "ttcp-r: buflen=" << options.buflen
            << ", sockbuf=" << options.sockbuf << "  tcp\nlistening on "
            << cmd.bind << ":" << *bound << std::endl;
  if (!cmd.port_file.empty()) {
    if (absl::Status s = tools::WritePortFile(cmd.port_file, *bound); !s.ok()) {
      std::cerr << "ttcp-r: " << s.message() << "\n";
      return tools::kExitFailure;
    }
  }
  absl::StatusOr<ttcp::Result> r = Api::Receive(*listener, options);
  if (!r.ok()) {
    std::cerr << "ttcp-r: " << r.status().message() << "\n";
    return tools::kExitFailure;
  }
  std::cout << ttcp::FormatReport('r', options, *r) << std::flush;
  return tools::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  namespace tools = offload::tools;
  namespace ttcp = offload::tools::ttcp;
  tools::ArgReader args(argc, argv);
  Command cmd;
  ttcp::Options& options = cmd.options;
  bool transmit = false, receive = false;
  std::string host, api = ttcp::CApi::kName;
  uint64_t port = options.port, timeout = 60, sockbuf = 0;
  while (args.Next()) {
    std::string arg;
    if (args.Flag("--help", "-h")) {
      std::cout << kUsage;
      return tools::kExitOk;
    } else if (args.Flag("--transmit", "-t")) {
      transmit = true;
    } else if (args.Flag("--receive", "-r")) {
      receive = true;
    } else if (args.Uint("--buflen", "-l", 1, ttcp::kMaxBuflen,
                         &options.buflen)) {
    } else if (args.Uint("--nbuf", "-n", 1, uint64_t{1} << 32, &options.nbuf)) {
    } else if (args.Uint("--port", "-p", 0, 65535, &port)) {
    } else if (args.Uint("--sockbuf", "-b", 0, 1 << 30, &sockbuf)) {
    } else if (args.Flag("--nodelay", "-D")) {
      options.nodelay = true;
    } else if (args.Flag("--verify", "-V")) {
      options.verify = true;
    } else if (args.Value("--congestion", "", &options.congestion)) {
    } else if (args.Value("--bind", "", &cmd.bind)) {
    } else if (args.Value("--port-file", "", &cmd.port_file)) {
    } else if (args.Uint("--timeout", "", 1, 86400, &timeout)) {
    } else if (args.Value("--api", "", &api)) {
    } else if (host.empty() && args.Positional(&arg)) {
      host = arg;
    } else {
      args.Unknown();
    }
  }
  if (!args.error().empty()) return Usage(args.error());
  if (transmit == receive) return Usage("give exactly one of -t or -r");
  if (api != ttcp::CApi::kName && api != ttcp::CxxApi::kName) {
    return Usage("--api expects c or cxx, got '" + api + "'");
  }
  options.port = static_cast<uint16_t>(port);
  options.sockbuf = static_cast<int>(sockbuf);
  options.timeout = absl::Seconds(timeout);
  cmd.transmit = transmit;

  if (transmit) {
    if (host.empty()) return Usage("-t needs the receiver's HOST");
    if (port == 0) return Usage("-t needs -p N with N > 0");
    if (absl::StatusOr<in_addr> a = tools::ParseIpv4(host); !a.ok()) {
      return Usage(std::string(a.status().message()));
    }
    options.host = host;
  } else if (!host.empty()) {
    return Usage("-r takes no HOST (use --bind)");
  }
  return api == ttcp::CxxApi::kName ? Run<ttcp::CxxApi>(cmd)
                                    : Run<ttcp::CApi>(cmd);
}
