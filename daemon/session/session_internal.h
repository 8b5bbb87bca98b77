// Private state of the session manager and its brokers, shared by their
// .cc files. Not part of the API: include only from daemon/session/*.cc.
//
// Thread safety: every object here is guarded by SessionManager::mu_.

#ifndef OFFLOAD_DAEMON_SESSION_SESSION_INTERNAL_H_
#define OFFLOAD_DAEMON_SESSION_SESSION_INTERNAL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "daemon/session/listen_addr.h"
#include "daemon/session/session_manager.h"
#include "daemon/wire/app_pipe.h"
#include "shm/abi.h"
#include "shm/segment.h"
#include "shm/unique_fd.h"

namespace offload {
namespace session {

using shm::kStatusUseKernel;
using shm::MakeSealedMemfd;

// Sets or clears `port_host` in a published port bitmap (abi.h); returns
// the previous bit.
bool SetPortWord(std::atomic<uint64_t>* words, uint16_t port_host, bool on);
// True for a loopback address or one of this namespace's addresses
// (network order).
bool IsLocalAddress(uint32_t addr);

// Dotted-quad text of a network-order IPv4 address (log messages).
std::string IpText(uint32_t net_order);
// The inode of /proc/<pid>/ns/net (pid 0: this process's), 0 if unknown.
uint64_t NetnsOf(uint32_t pid);
// /proc/<pid>/comm, "" if unknown.
std::string CommOf(uint32_t pid);
// CLOCK_REALTIME in milliseconds.
uint64_t NowUnixMs();

struct Session;
// Replies kStatus `status` (0, a positive errno, or shm::kStatusUseKernel)
// to request `req` of `s`. A process that cannot take it is going away; its
// EOF detaches it.
void ReplyStatus(Session* s, const shm::Msg& req, int status);

// An attached process.
struct Session {
  shm::UniqueFd fd;  // the attach connection; EOF = the process is gone (or exec'd)
  uint64_t serial = 0;  // unique for the daemon's lifetime (keys channels)
  uint32_t pid = 0, uid = 0, gid = 0;
  uint64_t netns = 0;  // inode of /proc/<pid>/ns/net (0 if unknown)
  std::string program;
  std::string app_id;
  uint64_t attached_unix_ms = 0;
  bool hello_done = false;
  shm::Mapping arena;  // our mapping of the process's arena
  std::vector<uint64_t> doorbells;  // its threads' doorbell ids
  std::set<uint64_t> peer_doorbells;  // other processes' doorbells it has a copy of
  std::set<uint32_t> channels_sent;        // channel memfds this process was given
  std::shared_ptr<wire::EngineChannel> engine_channel;  // its active opens on the wire
  std::map<uint32_t, uint32_t> udp;        // client endpoint id -> UdpEndpoint id
  std::set<uint32_t> dgrams;               // DgramRing ids (either side)
  std::map<uint32_t, bool> threads;        // explicit thread-offload states
  std::string log_level = "info";

  shm::ArenaHeader* header() const { return arena.as<shm::ArenaHeader>(); }
};

struct UdpEndpoint {
  uint32_t id = 0;
  Session* session = nullptr;
  uint32_t client_id = 0;
  uint32_t addr = 0;  // network order; AF_INET endpoints only (0 for AF_INET6)
  uint16_t port = 0;  // network order
  ListenAddr where;   // what it is bound to, either family (same-host rings)
  uint64_t netns = 0;
  shm::UniqueFd efd;
  bool reuse = false;  // SO_REUSEADDR/SO_REUSEPORT on the shadow at registration
  bool reuseport = false;  // SO_REUSEPORT among them (UdpBroker::Receiver)
  // Served by an engine on the wire (udp_broker_wire.cc) while rings is set.
  std::shared_ptr<wire::AppDgram> rings;
  wire::WireUdp wire;
};

struct DgramRing {
  uint32_t id = 0;
  shm::Mapping segment;
  Session* sender = nullptr;
  Session* receiver = nullptr;
  uint32_t receiver_endpoint = 0;  // UdpEndpoint id
  bool sender_open = false, receiver_open = false;
  shm::DgramHeader* header() const { return segment.as<shm::DgramHeader>(); }
};

}  // namespace session
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SESSION_SESSION_INTERNAL_H_
