// Private state of SessionManager, shared by its .cc files. Not part of the
// API: include only from daemon/session/*.cc.
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

#include "daemon/session/session_manager.h"
#include "shm/abi.h"
#include "shm/segment.h"
#include "shm/unique_fd.h"

namespace offload {
namespace session {

// Reply status meaning "no offloaded peer: use the kernel".
inline constexpr int32_t kStatusUseKernel = -1;

using shm::MakeSealedMemfd;

// Sets or clears `port_host` in a published port bitmap (abi.h); returns
// the previous bit.
bool SetPortWord(std::atomic<uint64_t>* words, uint16_t port_host, bool on);

struct SessionManager::Session {
  shm::UniqueFd fd;  // the attach connection; EOF = the process is gone
  uint32_t pid = 0, uid = 0, gid = 0;
  uint64_t netns = 0;  // inode of /proc/<pid>/ns/net (0 if unknown)
  std::string program;
  std::string app_id;
  uint64_t attached_unix_ms = 0;
  bool hello_done = false;
  shm::Mapping arena;  // our mapping of the process's arena
  std::map<uint32_t, uint32_t> listeners;  // client listener id -> Listener id
  std::map<uint32_t, uint32_t> udp;        // client endpoint id -> UdpEndpoint id
  std::set<uint32_t> pipes;                // Pipe ids this process is a side of
  std::set<uint32_t> dgrams;               // DgramRing ids (either side)
  std::map<uint32_t, bool> threads;        // explicit thread-offload states
  std::string log_level = "info";

  shm::ArenaHeader* header() const { return arena.as<shm::ArenaHeader>(); }
};

struct SessionManager::Listener {
  uint32_t id = 0;
  Session* session = nullptr;
  uint32_t client_id = 0;
  uint32_t addr = 0;  // network order; 0 = INADDR_ANY
  uint16_t port = 0;  // network order
  uint64_t netns = 0;
  uint32_t backlog = 0;
  uint32_t pending = 0;  // offered, not yet accepted
  shm::UniqueFd efd;     // the listener's eventfd (kicked after an offer)
  bool on_wire = false;  // also listens on the offloaded interface
};

struct SessionManager::Pipe {
  uint32_t id = 0;
  shm::Mapping segment;
  shm::UniqueFd efd[2];          // [0] connector's, [1] acceptor's
  shm::UniqueFd alive[2];        // read ends of the sides' liveness pipes
  Session* side[2] = {nullptr, nullptr};
  bool open[2] = {false, false};
  uint32_t listener_id = 0;      // while not accepted
  bool accepted = false;
  // Wire pipes: the other side is an engine serving `flow`; `app` owns the
  // segment (segment/efd stay empty) and side[1 - app->app_side()] is null.
  std::shared_ptr<wire::AppPipe> app;
  wire::WireFlow flow;
  shm::PipeHeader* header() const {
    return app != nullptr ? app->header() : segment.as<shm::PipeHeader>();
  }
};

struct SessionManager::UdpEndpoint {
  uint32_t id = 0;
  Session* session = nullptr;
  uint32_t client_id = 0;
  uint32_t addr = 0;  // network order
  uint16_t port = 0;  // network order
  uint64_t netns = 0;
  shm::UniqueFd efd;
  bool reuse = false;  // SO_REUSEADDR/SO_REUSEPORT on the shadow at registration
  // Served by an engine on the wire (session_wire_udp.cc) while rings is set.
  std::shared_ptr<wire::AppDgram> rings;
  wire::WireUdp wire;
};

struct SessionManager::DgramRing {
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
