// TcpBroker: offloadd's part in offloaded TCP, for the same host and the
// wire. The data path and connection setup between processes are shared
// memory (shm/pipe.h, shm/listener.h); the broker only
//   * registers listeners: a listener segment (accept queue) per listening
//     socket, the published port bit, and the wire listener when offloadd
//     owns an interface;
//   * hands out channels: the first connect of a process to a listener
//     creates their channel; later connects between them never reach the
//     daemon. Acceptors map a channel when they first take one of its
//     connections (kMapChannel, with the listener as proof);
//   * opens connections on the wire: a pipe slot in the process's engine
//     channel, served by an engine;
//   * follows the kernel's reference count of every socket held by several
//     processes (kShare, SocketWatch) and closes its end when the last
//     holder anywhere has closed it; closes the ends a dead process held
//     alone (its arena's socket slots say which);
//   * answers adoptions (a socket received by exec or SCM_RIGHTS).
//
// Everything a process sends or writes is validated: channel ids, slots
// and generations are checked against the daemon's own tables and the
// record (the end's socket inode must match the proof), and the daemon
// never waits for a lock a process can hold.
//
// Thread safety: every method runs on the session manager's thread with
// its mutex held (ABSL annotations live on the manager).

#ifndef OFFLOAD_DAEMON_SESSION_TCP_BROKER_H_
#define OFFLOAD_DAEMON_SESSION_TCP_BROKER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "daemon/session/doorbells.h"
#include "daemon/session/listen_addr.h"
#include "daemon/session/protocol.h"
#include "daemon/session/session_internal.h"
#include "daemon/session/socket_watch.h"
#include "daemon/wire/wire_plane.h"
#include "shm/channel_map.h"
#include "shm/listener.h"

namespace offload {
namespace session {

class TcpBroker {
 public:
  struct Env {
    DoorbellRegistry* doorbells = nullptr;
    SocketWatch* watch = nullptr;
    uint32_t pipe_capacity = 0;
    // Sets or clears a TCP port bit in every arena.
    std::function<void(uint16_t port_net, bool on)> publish_port;
    // Assigns host-unique ids (channels, listeners).
    std::function<uint32_t()> next_id;
    // A same-host channel was retired: the sessions it was sent to are
    // told to unmap it (kChannelGone).
    std::function<void(uint32_t channel_id)> channel_gone;
  };
  explicit TcpBroker(Env env) : env_(std::move(env)) {}
  ~TcpBroker();

  // Wire path (null: same host only). Before any request.
  void SetWirePlane(wire::WirePlane* wire, uint32_t wire_addr_net, uint64_t netns);

  // Requests; each replies to `s` (or not, for kShare).
  void Listen(Session* s, Request& req);
  void Connect(Session* s, Request& req);
  void MapChannel(Session* s, Request& req);
  void Share(Session* s, Request& req);
  void Adopt(Session* s, Request& req);
  void FreeSlotRequest(Session* s, const shm::Msg& m);

  // A watched socket was released everywhere.
  void OnReleased(int wd);
  // `s` is gone: ends the pipe ends it held alone (its arena says which);
  // the channels it connected through are retired once every slot is free
  // (now, or at a later ReapChannels()).
  void OnSessionGone(Session* s);
  // Retires the channels whose connecting process is gone and whose slots
  // are all free (both ends closed, by processes or on their behalf).
  // Cheap when there are none; called on connects and session ends, so
  // channels left over wait at most for the next of those.
  void ReapChannels();
  size_t NumChannelsForTest() const { return channels_.size(); }
  // Work deferred because a process held a lock (listener drains, frees).
  // Returns true while some remains (the caller retries a little later).
  bool RetryDeferred();

  // Every listener's port (for a new arena).
  void ForEachListenerPort(const std::function<void(uint16_t port_net)>& fn) const;
  size_t NumListenersForTest() const { return listeners_.size(); }

 private:
  struct Listener {
    uint32_t id = 0;
    uint64_t inode = 0;
    int wd = -1;
    uint64_t netns = 0;
    uint32_t addr = 0;  // network order; 0 = INADDR_ANY (AF_INET listeners only)
    uint16_t port = 0;  // network order
    ListenAddr where;   // what it is bound to, either family (same-host matching)
    uint32_t backlog = 0;
    uint32_t pid = 0;   // the process that called listen() (logs)
    shm::SockOpts opts = {};  // the socket's options at listen() (engine listener)
    shm::UniqueFd memfd;
    std::shared_ptr<shm::Mapping> seg;
    std::map<uint64_t, uint32_t> channels;  // connecting session serial -> channel id
    std::shared_ptr<wire::EngineChannel> engine_channel;  // passive opens on the wire
    bool on_wire = false;
    shm::ListenerHeader* header() const { return seg->as<shm::ListenerHeader>(); }
  };
  struct Channel {
    uint32_t id = 0;
    uint32_t listener_id = 0;
    std::unique_ptr<shm::ChannelMap> map;          // same host
    std::shared_ptr<wire::EngineChannel> engine;   // engine channel
    uint64_t connector = 0;  // same host: the serial of the session it was made for
    // An orphan's slots below this index were found free (ReapChannels).
    // Its connector is gone, so nothing allocates there again and a free
    // slot stays free: each slot is looked at once while it is free.
    uint64_t reap_cursor = 0;
    shm::ChannelMap* view() const { return engine != nullptr ? engine->map() : map.get(); }
    int memfd() const { return view()->memfd(); }
  };
  struct Watched {
    bool listener = false;
    uint32_t id = 0;  // listener id, or channel id
    uint32_t slot = 0, gen = 0, end = 0;
    uint64_t inode = 0;
  };
  struct WirePort {
    wire::WireListener handle;
    std::vector<uint32_t> listeners;  // newest last: it gets the connections
  };
  struct DeferredFree {
    uint32_t channel, slot, gen;
  };

  Listener* FindListener(uint32_t id);
  Channel* FindChannel(uint32_t id);
  // Replies kChannel for `c` to `s`, with the listener segment when given.
  void SendChannel(Session* s, const shm::Msg& req, Channel* c, Listener* l, uint32_t slot,
                   uint32_t gen);
  bool WireConnect(Session* s, const shm::Msg& m, const shm::SockAddr& shadow,
                   uint64_t inode, int fd);
  void WireListen(Listener* l);
  void WireUnlisten(Listener* l);
  // The listener's options changed (listen() again after a setsockopt).
  void WireListenerOptions(Listener* l);
  std::shared_ptr<wire::AcceptTarget> TargetOf(Listener* l) const;
  // Watches the socket `fd` as `w`; false (logged) when it cannot.
  bool WatchSocket(int fd, const Watched& w);
  // Ends end `end` of a pipe on behalf of its released socket, wakes the
  // peer, frees the slot when both ends are closed.
  void CloseEnd(Channel* c, uint32_t slot, uint32_t gen, uint32_t end, bool abort);
  void FreeSlot(Channel* c, uint32_t slot, uint32_t gen);
  void Wake(shm::RingWaitLine* w, uint32_t bits);
  // The listener's socket is gone: refuses new connections, resets the
  // queued ones (as Linux does), unpublishes the port.
  void CloseListener(Listener* l);
  bool DrainListener(Listener* l);

  Env env_;
  wire::WirePlane* wire_ = nullptr;
  uint32_t wire_addr_ = 0;  // network order
  uint64_t wire_netns_ = 0;
  std::map<uint32_t, std::unique_ptr<Listener>> listeners_;
  std::map<uint32_t, std::unique_ptr<Channel>> channels_;
  std::map<int, Watched> watched_;          // by watch descriptor
  std::map<uint64_t, int> wd_by_inode_;
  // By WirePortKey: an IPv4 and a v6-only IPv6 listener on one port (nginx's
  // `listen 80; listen [::]:80 ipv6only=on`) are two engine listeners.
  std::map<uint32_t, WirePort> wire_ports_;
  static uint32_t WirePortKey(const Listener* l);
  std::vector<std::unique_ptr<Listener>> closing_listeners_;  // drain deferred
  std::vector<DeferredFree> deferred_frees_;
  // Same-host channels whose connecting session is gone (ReapChannels).
  std::set<uint32_t> orphans_;
  // Active opens on the wire, by (channel id << 32 | slot): the daemon
  // holds the socket's copy (its port) while one process holds it alone.
  std::map<uint64_t, std::weak_ptr<wire::AppPipe>> engine_pipes_;
  uint32_t rr_ = 0;  // round robin among listeners sharing a port
};

}  // namespace session
}  // namespace offload

#endif  // OFFLOAD_DAEMON_SESSION_TCP_BROKER_H_
