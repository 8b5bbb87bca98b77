// The compiled XDP steering program (daemon/xdp/bpf/steer_kern.c), embedded
// by the build as an ELF object image.

#ifndef OFFLOAD_DAEMON_XDP_STEER_KERN_OBJ_H_
#define OFFLOAD_DAEMON_XDP_STEER_KERN_OBJ_H_

#include <cstddef>

namespace offload::xdp {

extern const unsigned char kSteerKernObj[];
extern const size_t kSteerKernObjSize;

}  // namespace offload::xdp

#endif  // OFFLOAD_DAEMON_XDP_STEER_KERN_OBJ_H_
