// Loading, attaching and editing the XDP steering program (see header).

#include "daemon/xdp/steer_program.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/xdp/steer_kern_obj.h"

namespace offload::xdp {
namespace {

// libbpf/libxdp print warnings through a callback. We keep the last lines of
// the current thread's load/attach attempt and put them into the Status, so
// the verifier log or the attach refusal reaches the operator.
thread_local std::string* tls_lib_log = nullptr;

int CaptureLibLog(int level, const char* fmt, va_list ap) {
  if (tls_lib_log == nullptr || level > LIBBPF_WARN) return 0;
  char line[512];
  vsnprintf(line, sizeof(line), fmt, ap);
  if (tls_lib_log->size() < 4096) tls_lib_log->append(line);
  return 0;
}

int CaptureLibbpf(enum libbpf_print_level level, const char* fmt, va_list ap) {
  return CaptureLibLog(level, fmt, ap);
}

int CaptureLibxdp(enum libxdp_print_level level, const char* fmt, va_list ap) {
  return CaptureLibLog(level, fmt, ap);
}

void InstallPrintHooks() {
  static std::once_flag once;
  std::call_once(once, [] {
    libbpf_set_print(CaptureLibbpf);
    libxdp_set_print(CaptureLibxdp);
  });
}

// Collects library warnings for the lifetime of the scope.
class ScopedLibLog {
 public:
  ScopedLibLog() {
    InstallPrintHooks();
    tls_lib_log = &log_;
  }
  ~ScopedLibLog() { tls_lib_log = nullptr; }
  std::string Tail() const {
    if (log_.empty()) return "";
    return absl::StrCat("; libbpf/libxdp said: ", log_);
  }

 private:
  std::string log_;
};

std::string Errno(int err) { return strerror(err < 0 ? -err : err); }

// Detaches `mp` if it is our program; see DetachStale().
absl::StatusOr<bool> DetachIfOurs(int ifindex, xdp_multiprog* mp) {
  std::vector<std::string> foreign;
  bool ours = false;
  if (xdp_multiprog__is_legacy(mp)) {
    xdp_program* main = xdp_multiprog__main_prog(mp);
    if (main != nullptr) {
      if (strcmp(xdp_program__name(main), OFFLOAD_XDP_PROG_NAME) == 0) {
        ours = true;
      } else {
        foreign.push_back(xdp_program__name(main));
      }
    }
  } else {
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p != nullptr;
         p = xdp_multiprog__next_prog(p, mp)) {
      if (strcmp(xdp_program__name(p), OFFLOAD_XDP_PROG_NAME) == 0) {
        ours = true;
      } else {
        foreign.push_back(xdp_program__name(p));
      }
    }
  }
  if (!foreign.empty() && (ours || xdp_multiprog__is_legacy(mp))) {
    // A legacy foreign program would be replaced by ours; a dispatcher
    // holding ours and others cannot be partially cleaned up safely here.
    return absl::FailedPreconditionError(absl::StrCat(
        "interface ifindex ", ifindex, " has another XDP program attached (",
        foreign.front(),
        "); detach it (`ip link set dev <if> xdp off`) or use another "
        "interface"));
  }
  if (!ours) return false;
  int err = xdp_multiprog__detach(mp);
  if (err != 0) {
    return absl::InternalError(
        absl::StrCat("cannot detach stale ", OFFLOAD_XDP_PROG_NAME,
                     " from ifindex ", ifindex, ": ", Errno(err)));
  }
  return true;
}

// Claims interface `ifindex` of the caller's network namespace for this
// process: binds the abstract unix socket "offloadd/xdp/<ifindex>". Abstract
// names are per network namespace and vanish with the last fd, so a killed
// daemon releases its claim with its process and a live one keeps it: this
// is what tells a stale program (replace it) from a live instance's (refuse).
absl::StatusOr<int> ClaimInterface(int ifindex) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create the ownership socket: ", strerror(errno)));
  }
  sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  std::string name = absl::StrCat("offloadd/xdp/", ifindex);
  memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0
  socklen_t len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    int err = errno;
    close(fd);
    if (err == EADDRINUSE) {
      return absl::FailedPreconditionError(absl::StrCat(
          "interface ifindex ", ifindex,
          " is already driven by a running offloadd in this network "
          "namespace; stop it first"));
    }
    return absl::InternalError(
        absl::StrCat("cannot bind the ownership socket: ", strerror(err)));
  }
  return fd;
}

}  // namespace

offload_flow_key ToBpfKey(const nic::FlowKey& key) {
  offload_flow_key k;
  memset(&k, 0, sizeof(k));
  if (key.ipv6) {
    k.family = OFFLOAD_FAMILY_IPV6;
    memcpy(k.local_ip, key.local_ip6.data(), 16);
    memcpy(k.remote_ip, key.remote_ip6.data(), 16);
  } else {
    k.family = OFFLOAD_FAMILY_IPV4;
    const uint32_t local = htonl(key.local_ip), remote = htonl(key.remote_ip);
    memcpy(k.local_ip, &local, 4);
    memcpy(k.remote_ip, &remote, 4);
  }
  k.local_port = htons(key.local_port);
  k.remote_port = htons(key.remote_port);
  k.proto = static_cast<uint8_t>(key.proto);
  return k;
}

absl::StatusOr<bool> SteerProgram::DetachStale(int ifindex) {
  ScopedLibLog log;
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  long err = libxdp_get_error(mp);
  if (err == -ENOENT || mp == nullptr) return false;  // nothing attached
  if (err != 0) {
    return absl::InternalError(
        absl::StrCat("cannot query XDP programs on ifindex ", ifindex, ": ",
                     Errno(err), log.Tail()));
  }
  absl::StatusOr<bool> result = DetachIfOurs(ifindex, mp);
  xdp_multiprog__close(mp);
  return result;
}

absl::StatusOr<std::unique_ptr<SteerProgram>> SteerProgram::Open(
    uint32_t max_flows) {
  ScopedLibLog log;
  std::unique_ptr<SteerProgram> sp(new SteerProgram());
  DECLARE_LIBBPF_OPTS(bpf_object_open_opts, opts,
                      .object_name = OFFLOAD_XDP_PROG_NAME);
  sp->obj_ = bpf_object__open_mem(kSteerKernObj, kSteerKernObjSize, &opts);
  long err = libbpf_get_error(sp->obj_);
  if (err != 0) {
    sp->obj_ = nullptr;
    return absl::InternalError(absl::StrCat(
        "cannot open the embedded XDP object: ", Errno(err), log.Tail()));
  }
  bpf_map* flows = bpf_object__find_map_by_name(sp->obj_, "flows");
  if (flows == nullptr) {
    return absl::InternalError("embedded XDP object has no 'flows' map");
  }
  if (max_flows == 0) max_flows = OFFLOAD_XDP_DEFAULT_MAX_FLOWS;
  if (int e = bpf_map__set_max_entries(flows, max_flows); e != 0) {
    return absl::InternalError(
        absl::StrCat("cannot size the flow map: ", Errno(e)));
  }
  return sp;
}

absl::StatusOr<std::unique_ptr<SteerProgram>> SteerProgram::LoadForTest(
    uint32_t max_flows) {
  absl::StatusOr<std::unique_ptr<SteerProgram>> sp = Open(max_flows);
  if (!sp.ok()) return sp.status();
  ScopedLibLog log;
  if (int err = bpf_object__load((*sp)->obj_); err != 0) {
    return absl::InternalError(
        absl::StrCat("cannot load the XDP program: ", Errno(err), log.Tail()));
  }
  SteerProgram& p = **sp;
  p.flows_map_fd_ = bpf_object__find_map_fd_by_name(p.obj_, "flows");
  p.xsks_map_fd_ = bpf_object__find_map_fd_by_name(p.obj_, "xsks");
  p.stats_map_fd_ = bpf_object__find_map_fd_by_name(p.obj_, "stats");
  return sp;
}

absl::StatusOr<std::unique_ptr<SteerProgram>> SteerProgram::Attach(
    int ifindex, nic::XdpAttachMode mode, uint32_t max_flows) {
  absl::StatusOr<int> claim = ClaimInterface(ifindex);
  if (!claim.ok()) return claim.status();
  absl::StatusOr<std::unique_ptr<SteerProgram>> sp = Open(max_flows);
  if (!sp.ok()) {
    close(*claim);
    return sp.status();
  }
  SteerProgram& p = **sp;
  p.claim_fd_ = *claim;
  // We own the interface now: a program of ours still attached was left by
  // an instance that died without detaching.
  absl::StatusOr<bool> stale = DetachStale(ifindex);
  if (!stale.ok()) return stale.status();

  ScopedLibLog log;
  p.prog_ = xdp_program__from_bpf_obj(p.obj_, "xdp");
  if (long err = libxdp_get_error(p.prog_); err != 0) {
    p.prog_ = nullptr;
    return absl::InternalError(absl::StrCat(
        "libxdp cannot use the embedded XDP object: ", Errno(err), log.Tail()));
  }
  int err = -EINVAL;
  if (mode != nic::XdpAttachMode::kGeneric) {
    err = xdp_program__attach(p.prog_, ifindex, XDP_MODE_NATIVE, 0);
    p.native_ = (err == 0);
  }
  if (err != 0 && mode != nic::XdpAttachMode::kNative) {
    // The driver has no native XDP: generic mode works on every netdev.
    err = xdp_program__attach(p.prog_, ifindex, XDP_MODE_SKB, 0);
  }
  if (err != 0) {
    std::string what = absl::StrCat("cannot attach the XDP program to ifindex ",
                                    ifindex, ": ", Errno(err), log.Tail());
    if (err == -EPERM || err == -EACCES) {
      return absl::PermissionDeniedError(
          absl::StrCat(what, " (offloadd needs CAP_NET_ADMIN and CAP_BPF)"));
    }
    return absl::InternalError(what);
  }
  p.ifindex_ = ifindex;
  p.flows_map_fd_ = bpf_object__find_map_fd_by_name(p.obj_, "flows");
  p.xsks_map_fd_ = bpf_object__find_map_fd_by_name(p.obj_, "xsks");
  p.stats_map_fd_ = bpf_object__find_map_fd_by_name(p.obj_, "stats");
  if (p.flows_map_fd_ < 0 || p.xsks_map_fd_ < 0 || p.stats_map_fd_ < 0) {
    return absl::InternalError("attached XDP program is missing its maps");
  }
  return sp;
}

SteerProgram::~SteerProgram() {
  if (prog_ != nullptr) {
    if (ifindex_ != 0) {
      xdp_program__detach(prog_, ifindex_,
                          native_ ? XDP_MODE_NATIVE : XDP_MODE_SKB, 0);
    }
    xdp_program__close(prog_);  // does not close obj_ (external object)
  }
  if (obj_ != nullptr) bpf_object__close(obj_);
  if (claim_fd_ >= 0) close(claim_fd_);
}

int SteerProgram::prog_fd() const {
  if (prog_ != nullptr) return xdp_program__fd(prog_);
  bpf_program* p =
      bpf_object__find_program_by_name(obj_, OFFLOAD_XDP_PROG_NAME);
  return p == nullptr ? -1 : bpf_program__fd(p);
}

absl::Status SteerProgram::SetFlow(const nic::FlowKey& key, uint32_t queue) {
  if (std::string why = nic::ValidateFlowKey(key); !why.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot steer ", key.ToString(), ": ", why));
  }
  offload_flow_key k = ToBpfKey(key);
  offload_flow_value v;
  memset(&v, 0, sizeof(v));
  v.queue_id = queue;
  if (bpf_map_update_elem(flows_map_fd_, &k, &v, BPF_ANY) != 0) {
    int err = errno;
    if (err == E2BIG || err == ENOMEM) {
      return absl::ResourceExhaustedError(
          absl::StrCat("XDP flow table full, cannot steer ", key.ToString(),
                       "; raise max_flows"));
    }
    return absl::InternalError(
        absl::StrCat("cannot steer ", key.ToString(), ": ", strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status SteerProgram::DeleteFlow(const nic::FlowKey& key) {
  offload_flow_key k = ToBpfKey(key);
  if (bpf_map_delete_elem(flows_map_fd_, &k) != 0) {
    int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("flow ", key.ToString(), " is not steered"));
    }
    return absl::InternalError(
        absl::StrCat("cannot unsteer ", key.ToString(), ": ", strerror(err)));
  }
  return absl::OkStatus();
}

bool SteerProgram::HasFlow(const nic::FlowKey& key) const {
  offload_flow_key k = ToBpfKey(key);
  offload_flow_value v;
  return bpf_map_lookup_elem(flows_map_fd_, &k, &v) == 0;
}

absl::StatusOr<SteerStats> SteerProgram::ReadStats() const {
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return absl::InternalError("cannot count possible CPUs");
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpus));
  SteerStats out = {};
  for (uint32_t i = 0; i < OFFLOAD_STAT_COUNT; ++i) {
    if (bpf_map_lookup_elem(stats_map_fd_, &i, per_cpu.data()) != 0) {
      return absl::InternalError(
          absl::StrCat("cannot read XDP statistics: ", strerror(errno)));
    }
    for (uint64_t v : per_cpu) out[i] += v;
  }
  return out;
}

}  // namespace offload::xdp
