// offload-cmd: command-line front end; see script.h and runner.h.

#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "tools/bench/arg_reader.h"
#include "tools/bench/socket_util.h"
#include "tools/cmd/runner.h"
#include "tools/cmd/script.h"

namespace {

constexpr char kUsage[] = R"(usage:
  offload-cmd server --script FILE [--bind ADDR] [--port N] [--port-file FILE]
                     [--timeout SEC] [--verbose]
  offload-cmd client --script FILE [--host ADDR] --port N [--timeout SEC]
                     [--verbose]
  offload-cmd check CLIENT_SCRIPT SERVER_SCRIPT

Runs a scripted TCP conversation and verifies every byte (after VMMC
sockcmd). Each side executes its own script file, one step per line:

  send <size> <repeat> <char>   send <repeat> messages of <size> bytes of <char>
  recv <size> <repeat> <char>   receive <repeat> x <size> bytes, all <char>
  # comment

TCP is a byte stream: 'recv 1024 10 A' on one side matches 'send 512 20 A'
on the other. When its script ends a side shuts down its sending half and
requires the peer to finish with no extra bytes. 'check' compares two
scripts without a network and names the first line where they disagree.

Example (client.txt / server.txt):
  send 100 10 a      |   recv 1000 1 a
  recv 64 1 z        |   send 32 2 z

options:
  --script FILE     the script this side runs
  --bind ADDR       server address to listen on (default 127.0.0.1)
  --host ADDR       server address to connect to (default 127.0.0.1)
  --port N          server port (server default 0: the kernel picks and the
                    port is printed as "listening on ADDR:PORT")
  --port-file FILE  server: also write the port to FILE once listening
  --timeout SEC     fail when the peer is silent this long (default 10)
  --verbose, -v     print each step as it completes
  --help, -h        this text

exit status: 0 conversation verified, 1 mismatch or I/O error,
             2 usage or script syntax error
)";

int Usage(const std::string& error) {
  std::cerr << "offload-cmd: " << error << "\n"
            << "run 'offload-cmd --help' for usage\n";
  return offload::tools::kExitUsage;
}

int Fail(const absl::Status& s) {
  std::cerr << "offload-cmd: FAILED: " << s.message() << "\n";
  return offload::tools::kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  namespace tools = offload::tools;
  namespace cmd = offload::tools::cmd;
  tools::ArgReader args(argc, argv);
  std::string mode, script_path, bind = "127.0.0.1", host = "127.0.0.1",
                                 port_file;
  std::vector<std::string> positional;
  uint64_t port = 0, timeout = 10;
  bool have_port = false;
  cmd::RunOptions options;
  while (args.Next()) {
    std::string arg;
    if (args.Flag("--help", "-h")) {
      std::cout << kUsage;
      return tools::kExitOk;
    } else if (args.Positional(&arg)) {
      if (mode.empty()) {
        mode = arg;
      } else {
        positional.push_back(arg);
      }
    } else if (args.Value("--script", "-s", &script_path)) {
    } else if (args.Value("--bind", "", &bind)) {
    } else if (args.Value("--host", "", &host)) {
    } else if (args.Uint("--port", "-p", 0, 65535, &port)) {
      have_port = true;
    } else if (args.Value("--port-file", "", &port_file)) {
    } else if (args.Uint("--timeout", "", 1, 86400, &timeout)) {
    } else if (args.Flag("--verbose", "-v")) {
      options.verbose = true;
    } else {
      args.Unknown();
    }
  }
  if (!args.error().empty()) return Usage(args.error());
  options.timeout = absl::Seconds(timeout);

  if (mode == "check") {
    if (positional.size() != 2) {
      return Usage("check needs two script files: CLIENT_SCRIPT SERVER_SCRIPT");
    }
    absl::StatusOr<cmd::Script> client = cmd::LoadScript(positional[0]);
    if (!client.ok()) return Usage(std::string(client.status().message()));
    absl::StatusOr<cmd::Script> server = cmd::LoadScript(positional[1]);
    if (!server.ok()) return Usage(std::string(server.status().message()));
    if (absl::Status s = cmd::CheckPair(*client, *server); !s.ok()) {
      return Fail(s);
    }
    std::cout << "scripts agree in both directions\n";
    return tools::kExitOk;
  }
  if (mode != "server" && mode != "client") {
    return Usage(mode.empty()
                     ? "missing mode: 'server', 'client' or 'check'"
                     : absl::StrCat("unknown mode '", mode,
                                    "': expected server, client or check"));
  }
  if (!positional.empty()) {
    return Usage(absl::StrCat("unexpected argument '", positional[0], "'"));
  }
  if (script_path.empty()) return Usage(mode + " needs --script FILE");
  absl::StatusOr<cmd::Script> script = cmd::LoadScript(script_path);
  if (!script.ok()) return Usage(std::string(script.status().message()));

  tools::UniqueFd conn;
  if (mode == "server") {
    absl::StatusOr<tools::UniqueFd> listener =
        tools::BindSocket(SOCK_STREAM, bind, static_cast<uint16_t>(port), 1);
    if (!listener.ok()) {
      if (absl::IsInvalidArgument(listener.status())) {
        return Usage(std::string(listener.status().message()));
      }
      return Fail(listener.status());
    }
    absl::StatusOr<uint16_t> bound = tools::LocalPort(listener->get());
    if (!bound.ok()) return Fail(bound.status());
    std::cout << "listening on " << bind << ":" << *bound << std::endl;
    if (!port_file.empty()) {
      if (absl::Status s = tools::WritePortFile(port_file, *bound); !s.ok()) {
        return Fail(s);
      }
    }
    absl::StatusOr<tools::UniqueFd> c =
        tools::AcceptWithTimeout(listener->get(), absl::InfiniteDuration());
    if (!c.ok()) return Fail(c.status());
    conn = std::move(*c);
  } else {
    if (!have_port || port == 0) return Usage("client needs --port N (N > 0)");
    if (absl::StatusOr<in_addr> a = tools::ParseIpv4(host); !a.ok()) {
      return Usage(std::string(a.status().message()));
    }
    absl::StatusOr<tools::UniqueFd> c =
        tools::ConnectTo(SOCK_STREAM, host, static_cast<uint16_t>(port),
                         options.timeout);
    if (!c.ok()) return Fail(c.status());
    conn = std::move(*c);
  }
  absl::Status s = cmd::RunScript(conn.get(), *script, options, std::cout);
  if (!s.ok()) return Fail(s);
  std::cout << "CONVERSATION OK" << std::endl;
  return tools::kExitOk;
}
