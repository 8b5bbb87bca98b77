// ttcp on the typed C++ socket API (//api, issue 19): the same transfer,
// options, checks and report as the plain-socket version in ttcp.h, with
// sock::Connector / sock::Acceptor / sock::Stream in place of integer
// descriptors. `ttcp --api cxx` selects it; the pair is the ACE paper's
// "ttcp over C sockets vs over the C++ wrappers" measurement.
//
// The two issue the same system calls per buffer: a send (receiver: recv)
// with MSG_DONTWAIT, and a poll() only when the socket buffer is full
// (empty). Keep it that way: their ratio is meant to measure the wrappers.
//
// Thread safety: the functions use only their arguments.

#ifndef OFFLOAD_TOOLS_TTCP_TTCP_CXX_H_
#define OFFLOAD_TOOLS_TTCP_TTCP_CXX_H_

#include <stdint.h>

#include <string>

#include "absl/status/statusor.h"
#include "api/acceptor.h"
#include "tools/ttcp/ttcp.h"

namespace offload::tools::ttcp {

struct CxxApi {
  static constexpr char kName[] = "cxx";
  using Listener = sock::Acceptor;
  // Listens on bind:options.port (IPv4 or IPv6 literal) with
  // options.sockbuf. Errors: InvalidArgument for a bad address,
  // errno-derived codes.
  static absl::StatusOr<Listener> Listen(const std::string& bind,
                                         const Options& options);
  static absl::StatusOr<uint16_t> Port(const Listener& listener);
  // As ttcp::Receive.
  static absl::StatusOr<Result> Receive(Listener& listener,
                                        const Options& options);
  // As ttcp::Transmit.
  static absl::StatusOr<Result> Transmit(const Options& options);
};

}  // namespace offload::tools::ttcp

#endif  // OFFLOAD_TOOLS_TTCP_TTCP_CXX_H_
