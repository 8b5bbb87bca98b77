// Internals shared by the files of the attach session: attach.cc (the
// connection and its requests), registry.cc (registrations and arena
// slots) and doorbells.cc (doorbells and wake-ups). Not for other client
// code: it uses attach.h.

#ifndef OFFLOAD_CLIENT_ATTACH_INTERNAL_H_
#define OFFLOAD_CLIENT_ATTACH_INTERNAL_H_

#include <pthread.h>

#include <cstdint>

#include "client/socket.h"

namespace offload {
namespace client {

// Serialises requests on the attach socket (attach.cc) and guards the
// registrations and arena slots (registry.cc): a message the daemon posts
// is dispatched under it, so it never meets a socket unregistered before.
extern pthread_mutex_t g_session_mu;

// --- registry.cc; REQUIRES: g_session_mu held ------------------------------
// The socket registered under `id`, or null.
Socket* RegisteredSocketLocked(uint32_t id);
// A new arena of `max_sockets` counter slots (attach): every slot free.
void ResetSlotsLocked(uint32_t max_sockets);
// A forked child: the parent's registrations are not ours.
void ForgetRegistrationsLocked();

// --- doorbells.cc -------------------------------------------------------------
// offloadd is gone: forget our copies of its engines' doorbells (the next
// offloadd has its own).
void ForgetEngineDoorbells();
// pthread_atfork child: new thread identities (ForkGeneration), the
// parent's doorbells and pooled bells forgotten.
void DoorbellsAtForkChild();
// kDoorbellGone: the peer doorbell `listed` names is gone; our copy of it
// is closed once no kick holds it.
void ForgetPeerDoorbell(uint64_t listed);

// --- attach.cc ----------------------------------------------------------------
// CLOCK_MONOTONIC in milliseconds.
int64_t NowMs();
// Closes the received descriptors fds[0..n).
void CloseFds(const int* fds, int n);

}  // namespace client
}  // namespace offload

#endif  // OFFLOAD_CLIENT_ATTACH_INTERNAL_H_
