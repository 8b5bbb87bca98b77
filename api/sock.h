// The typed C++ socket API (ACE style), in one include:
//
//   InetAddr, UnixAddr          addresses (addr.h)
//   Acceptor, Connector         passive and active factories of Streams
//   Stream                      a connected TCP stream (stream.h)
//   Dgram, ConnectedDgram       UDP (dgram.h)
//   LocalStream, LocalAcceptor, LocalConnector
//                               AF_UNIX streams that pass descriptors
//   Status, Result<T>, IoResult errors as values (status.h)
//   Timeout                     bounds on waiting (timeout.h)
//
// See api/README.md for the design, the role rules that the compiler
// enforces, and the offload-aware hooks.

#ifndef OFFLOAD_API_SOCK_H_
#define OFFLOAD_API_SOCK_H_

#include "api/acceptor.h"   // IWYU pragma: export
#include "api/addr.h"       // IWYU pragma: export
#include "api/connector.h"  // IWYU pragma: export
#include "api/dgram.h"      // IWYU pragma: export
#include "api/local.h"      // IWYU pragma: export
#include "api/socket.h"     // IWYU pragma: export
#include "api/status.h"     // IWYU pragma: export
#include "api/stream.h"     // IWYU pragma: export
#include "api/timeout.h"    // IWYU pragma: export

#endif  // OFFLOAD_API_SOCK_H_
