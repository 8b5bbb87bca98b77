// What the attach session registers for this process's sockets:
// registration ids and the sockets behind them (the daemon's offers name
// them), the registration of listeners and UDP endpoints with offloadd,
// and the sockets' counter slots in the arena (offloadctl stats).
//
// Thread safety: the tables are guarded by g_session_mu (attach.cc), the
// mutex that serialises requests, so an offer dispatched under it never
// meets a socket that was unregistered (attach_internal.h).

#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <unordered_map>
#include <vector>

#include "client/attach.h"
#include "client/attach_internal.h"
#include "client/fd_table.h"
#include "shm/unique_fd.h"

namespace offload {
namespace client {

namespace {

std::atomic<uint32_t> g_next_reg{1};
// Registration ids to sockets (g_session_mu).
std::unordered_map<uint32_t, Socket*>* g_regs = nullptr;
// Arena slots: indexes freed for reuse, and the first never used (g_session_mu).
std::vector<uint32_t>* g_free_slots = nullptr;
uint32_t g_next_slot = 0;
uint32_t g_max_slots = 0;
shm::SocketSlot g_dummy_slot;

}  // namespace

Socket* RegisteredSocketLocked(uint32_t id) {
  if (g_regs == nullptr) return nullptr;
  auto it = g_regs->find(id);
  return it != g_regs->end() ? it->second : nullptr;
}

void ResetSlotsLocked(uint32_t max_sockets) {
  if (g_free_slots == nullptr) g_free_slots = new std::vector<uint32_t>();
  g_free_slots->clear();
  g_next_slot = 0;
  g_max_slots = max_sockets;
  if (g_regs == nullptr) g_regs = new std::unordered_map<uint32_t, Socket*>();
}

void ForgetRegistrationsLocked() {
  if (g_regs != nullptr) g_regs->clear();
}

uint32_t NewRegId() { return g_next_reg.fetch_add(1, std::memory_order_relaxed); }

void RegisterSocket(uint32_t id, Socket* s) {
  pthread_mutex_lock(&g_session_mu);
  if (g_regs == nullptr) g_regs = new std::unordered_map<uint32_t, Socket*>();
  (*g_regs)[id] = s;
  pthread_mutex_unlock(&g_session_mu);
}

void UnregisterSocket(uint32_t id) {
  pthread_mutex_lock(&g_session_mu);
  if (g_regs != nullptr) g_regs->erase(id);
  pthread_mutex_unlock(&g_session_mu);
}

shm::SocketSlot* AllocSlot(Socket* s) {
  shm::ArenaHeader* a = Arena();
  pthread_mutex_lock(&g_session_mu);
  if (a != nullptr && g_free_slots != nullptr &&
      (!g_free_slots->empty() || g_next_slot < g_max_slots)) {
    auto* slots = reinterpret_cast<shm::SocketSlot*>(reinterpret_cast<uint8_t*>(a) +
                                                     a->slots_offset);
    {
      uint32_t i;
      if (!g_free_slots->empty()) {
        i = g_free_slots->back();
        g_free_slots->pop_back();
      } else {
        i = g_next_slot++;
        // Pairs with the daemon's load-acquire (ForEachValidSlot).
        a->slots_hwm.store(g_next_slot, std::memory_order_release);
      }
      pthread_mutex_unlock(&g_session_mu);
      shm::SocketSlot* slot = &slots[i];
      slot->in_use.store(0, std::memory_order_relaxed);
      slot->fd = s->fd;
      slot->inode = 0;
      slot->protocol = s->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
      slot->state = static_cast<uint8_t>(shm::SocketState::kCreated);
      slot->path = static_cast<uint8_t>(shm::SocketPath::kKernel);
      slot->fallback = 0;
      slot->rule_id = 0;
      slot->local_addr = slot->remote_addr = 0;
      slot->local_port = slot->remote_port = 0;
      memset(slot->fallback_detail, 0, sizeof(slot->fallback_detail));
      for (auto* c : {&slot->rx_bytes, &slot->rx_msgs, &slot->tx_bytes, &slot->tx_msgs,
                      &slot->rx_eagain, &slot->tx_eagain, &slot->errors, &slot->poll_hits,
                      &slot->poll_misses, &slot->rx_queue_bytes, &slot->rx_queue_max,
                      &slot->drops}) {
        c->store(0, std::memory_order_relaxed);
      }
      s->slot_index = static_cast<int>(i);
      s->slot_gen = AttachGeneration();
      s->slot = slot;
      // Pairs with the daemon's acquire load in CopySlot().
      slot->in_use.store(1, std::memory_order_release);
      return slot;
    }
  }
  pthread_mutex_unlock(&g_session_mu);
  s->slot_index = -1;
  s->slot = &g_dummy_slot;
  return s->slot;
}

void FreeSlot(Socket* s) {
  if (s->slot_index < 0) return;
  if (s->slot_index >= 0 && s->slot_gen != AttachGeneration()) {
    // A slot of an arena we no longer have (the parent's, before a fork,
    // or a previous offloadd's): not ours to free.
    s->slot_index = -1;
    return;
  }
  s->slot->in_use.store(0, std::memory_order_release);
  pthread_mutex_lock(&g_session_mu);
  if (g_free_slots != nullptr && static_cast<uint32_t>(s->slot_index) < g_max_slots &&
      Arena() != nullptr) {
    g_free_slots->push_back(static_cast<uint32_t>(s->slot_index));
  }
  pthread_mutex_unlock(&g_session_mu);
  s->slot_index = -1;
}

int EnsureSocketEventFd(Socket* s) {
  pthread_mutex_lock(&s->mu);
  if (!s->efd.valid()) s->efd.reset(HideFd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)));
  const int fd = s->efd.valid() ? s->efd.get() : -1;
  pthread_mutex_unlock(&s->mu);
  return fd;
}

bool RegisterEndpoint(Socket* s, shm::MsgType type, uint32_t value) {
  if (!EnsureAttached()) return false;
  if (EnsureSocketEventFd(s) < 0) return false;
  const uint32_t old = s->reg_id;
  s->reg_id = NewRegId();
  if (old != 0) UnregisterSocket(old);
  RegisterSocket(s->reg_id, s);
  shm::SockAddr local_tmp;
  shm::Msg m = {};
  m.type = type;
  m.id = s->reg_id;
  m.value = value;
  // offloadd reads the address from the socket; the port is checked.
  const shm::SockAddr local = shm::FromSockaddr(&s->local.sa, sizeof(s->local), &local_tmp)
                                  ? local_tmp
                                  : shm::SockAddr{};
  m.local.addr = local.family == AF_INET ? shm::V4Of(local) : 0;
  m.local.port = local.port;
  const int fds[2] = {s->fd, s->efd.get()};
  shm::Msg r;
  int rfds[shm::kMaxMsgFds];
  int nr = 0;
  const uint32_t gen = AttachGeneration();
  if (!Call(&m, fds, 2, &r, rfds, &nr) || r.type != shm::MsgType::kStatus || r.status != 0) {
    for (int i = 0; i < nr; ++i) shm::UniqueFd drop(rfds[i]);
    UnregisterSocket(s->reg_id);
    return false;
  }
  s->reg_gen = gen;
  return true;
}


}  // namespace client
}  // namespace offload
