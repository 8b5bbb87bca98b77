// UMEM area and registration (see header).

#include "daemon/xdp/umem.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace offload::xdp {

absl::StatusOr<std::unique_ptr<Umem>> Umem::Create(uint32_t num_frames,
                                                   uint32_t fill_size,
                                                   uint32_t comp_size) {
  if (num_frames == 0 || (num_frames & (num_frames - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frames per queue must be a power of two, got ", num_frames));
  }
  std::unique_ptr<Umem> u(new Umem());
  u->num_frames_ = num_frames;
  u->size_ = uint64_t{num_frames} * kFrameSize;
  void* area = mmap(nullptr, u->size_, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (area == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot map ", u->size_, " bytes of UMEM: ", strerror(errno),
        "; lower frames_per_queue"));
  }
  u->area_ = static_cast<uint8_t*>(area);
  xsk_umem_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.fill_size = fill_size;
  cfg.comp_size = comp_size;
  cfg.frame_size = kFrameSize;
  cfg.frame_headroom = 0;
  cfg.flags = 0;
  int err = xsk_umem__create(&u->umem_, u->area_, u->size_, &u->fill_,
                             &u->comp_, &cfg);
  if (err != 0) {
    u->umem_ = nullptr;
    std::string what =
        absl::StrCat("cannot register the UMEM: ", strerror(-err));
    if (err == -EPERM || err == -ENOMEM) {
      return absl::PermissionDeniedError(absl::StrCat(
          what, " (needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK)"));
    }
    return absl::InternalError(what);
  }
  u->free_.reserve(num_frames);
  for (uint32_t i = 0; i < num_frames; ++i) {
    u->free_.push_back(uint64_t{i} * kFrameSize);
  }
  return u;
}

Umem::~Umem() {
  if (umem_ != nullptr) xsk_umem__delete(umem_);
  if (area_ != nullptr) munmap(area_, size_);
}

}  // namespace offload::xdp
