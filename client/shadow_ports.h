// Local ports for the shadows of offloaded connects.
//
// An offloaded connection's local port is its shadow's: the shadow is
// bound (never connected) so that no kernel connection can take the same
// addresses. A bind to port 0 gets a port of its own, where the kernel's
// connect() shares one port between connections to different
// destinations; past a few thousand connections the kernel's search for a
// free port dominates each connect, and the ephemeral range caps a
// process at ~28 000 connections where the kernel holds that many per
// destination.
//
// So once a process holds kShareAbove offloaded connects, their shadows
// are bound with SO_REUSEADDR and share ports: a connect to destination D
// takes a port this process already uses for other destinations, never one
// it uses for D (the 4-tuple stays unique), and the kernel's own connect
// never picks an explicitly bound port. The application still reads its own
// SO_REUSEADDR value (sockopt.cc). Same-host connections only (the wire's
// steering keys flows by local port); a forked child starts a pool of its
// own.
//
// Thread safety: all functions are thread-safe (one internal mutex).

#ifndef OFFLOAD_CLIENT_SHADOW_PORTS_H_
#define OFFLOAD_CLIENT_SHADOW_PORTS_H_

#include "client/socket.h"
#include "shm/sockaddr.h"

namespace offload {
namespace client {

// Live offloaded connects in a process above which shadows share ports.
inline constexpr uint32_t kShareAbove = 1024;

// Binds the unbound shadow of `s` for a connect to `dst` (wildcard
// address, the socket's family). `shareable`: a same-host connection. False
// when no port could be had (errno from bind()).
bool BindShadowPort(Socket* s, const shm::SockAddr& dst, bool shareable);
// The socket is gone: its port (and destination) are free for the pool.
void ReleaseShadowPort(Socket* s);
// In a forked child: the parent's pool is the parent's.
void ShadowPortsAtForkChild();

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_SHADOW_PORTS_H_
