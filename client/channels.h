// The shared segments this process has mapped, by id: channels of TCP
// connections (shm/pipe.h), listeners' accept queues (shm/listener.h), and
// the route cache that lets a connect to an offloaded listener this
// process already reached skip offloadd entirely.
//
// Mappings are inherited by a forked child (with the tables: the child
// connects through its parent's channels); after exec they are gone and
// come back through adoption (sharing.cc).
//
// Thread safety: every function is thread-safe; lookups take a short
// internal mutex (connection setup only, never the data path).

#ifndef OFFLOAD_CLIENT_CHANNELS_H_
#define OFFLOAD_CLIENT_CHANNELS_H_

#include <cstdint>

#include "shm/channel_map.h"
#include "shm/listener.h"
#include "shm/sockaddr.h"
#include "shm/unique_fd.h"

namespace offload {
namespace client {

// The channel `id`, or null if this process has not mapped it (or offloadd
// retired it).
shm::ChannelMap* FindChannel(uint32_t id);
// A pipe end of this process uses `c` (AttachPipeEnd; released when the
// PipeEnd goes): a retired channel stays mapped until the last release.
void AcquireChannel(shm::ChannelMap* c);
void ReleaseChannel(shm::ChannelMap* c);
// offloadd retired channel `id` (kChannelGone: its connecting process is
// gone and every slot is free): unmapped and closed now, or at the last
// ReleaseChannel(). A process serving many short-lived clients otherwise
// keeps a memfd and a mapping per client it has seen.
void RetireChannel(uint32_t id);
// Maps the channel in `memfd` (taken); returns the existing mapping if the
// channel is already mapped. Null if it is not a valid channel.
shm::ChannelMap* AddChannel(shm::UniqueFd memfd);
// Asks offloadd for channel `id` (kMapChannel), proving access with the
// socket `proof_fd` (the listener it serves, or one of its pipe ends).
shm::ChannelMap* MapChannelVia(uint32_t id, int proof_fd);

// The accept queue of listener `id`, mapping `memfd` (taken; may be
// invalid if the listener is known) on first use; counted: each Acquire is
// paired with a ReleaseListener. Null if the segment is not valid.
shm::ListenerHeader* AcquireListener(uint32_t id, shm::UniqueFd memfd);
void ReleaseListener(uint32_t id);

// Where a connect to a destination (canonical, shm/sockaddr.h) went last
// time.
struct Route {
  uint32_t listener_id = 0;
  uint32_t channel_id = 0;
  shm::ListenerHeader* hdr = nullptr;  // holds a listener reference while cached
  shm::ChannelMap* chan = nullptr;
};
// True if a route is cached and its listener still listens (a closed one
// is evicted).
bool LookupRoute(const shm::SockAddr& dst, Route* out);
// Caches `r` (takes one listener reference from the caller).
void InsertRoute(const shm::SockAddr& dst, const Route& r);
void EvictRoute(const shm::SockAddr& dst);

// In a forked child: the parent may have held the tables' mutex. The
// parent's routes are dropped: offloadd retires a channel when the process
// it was made for is gone and tells only the processes it gave the channel
// to, so a child connects through channels of its own.
void ChannelsAtForkChild();

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_CHANNELS_H_
