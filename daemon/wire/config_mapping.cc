// DaemonConfig -> NIC / engine / stack configs (see header).

#include "daemon/wire/config_mapping.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace offload::wire {
namespace {

uint32_t RoundUpPow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v && p < (1u << 31)) p <<= 1;
  return p;
}

}  // namespace

absl::StatusOr<nic::InterfaceConfig> ToNicConfig(const v1::DaemonConfig& config,
                                                 int index) {
  if (index < 0 || index >= config.interfaces_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("interfaces[", index, "] does not exist"));
  }
  const v1::InterfaceConfig& in = config.interfaces(index);
  const uint32_t engines = std::max<uint32_t>(1, config.num_cores());
  nic::InterfaceConfig out;
  out.name = in.name();
  switch (in.driver()) {
    case v1::DRIVER_AF_XDP:
      out.driver = nic::DriverKind::kAfXdp;
      break;
    case v1::DRIVER_VERBS:
      out.driver = nic::DriverKind::kVerbs;
      break;
    default:
      out.driver = nic::DriverKind::kAuto;
      break;
  }
  out.num_queues = in.queues() == 0 ? engines : in.queues();
  if (out.num_queues < engines) {
    return absl::InvalidArgumentError(absl::StrCat(
        "interfaces[", index, "].queues: ", in.queues(), " queues of ",
        in.name(), " for num_cores ", engines,
        " would leave an engine without a queue to send on; set queues to 0 "
        "(one per engine) or at least num_cores"));
  }
  out.zero_copy = in.zero_copy() ? nic::ZeroCopy::kPrefer : nic::ZeroCopy::kDisable;
  // The stack's own frame pool is max_num_buffers; the driver's pool per
  // queue follows it so a queue can hold a full window of received frames.
  const uint32_t want = config.max_num_buffers() == 0 ? 4096 : config.max_num_buffers();
  out.frames_per_queue = std::clamp<uint32_t>(RoundUpPow2(want), 512, 65536);
  out.ring_size = out.frames_per_queue / 4;
  out.max_flows = std::max<uint32_t>(1024, config.max_concurrency());
  return out;
}

absl::StatusOr<engine::EngineSetConfig> ToEngineSetConfig(
    const v1::DaemonConfig& config) {
  engine::EngineSetConfig out;
  out.num_cores = std::max<uint32_t>(1, config.num_cores());
  out.poll_budget_us = config.engine_poll_us();
  if (config.cpu_affinity_size() > 0) {
    if (static_cast<uint32_t>(config.cpu_affinity_size()) < out.num_cores) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cpu_affinity lists ", config.cpu_affinity_size(), " CPUs for num_cores ",
          out.num_cores, "; give one CPU per engine or leave cpu_affinity empty"));
    }
    for (uint32_t i = 0; i < out.num_cores; ++i) {
      out.cores.push_back(static_cast<int>(config.cpu_affinity(static_cast<int>(i))));
    }
  }
  return out;
}

stack::StackConfig ToStackConfig(const v1::DaemonConfig& config) {
  stack::StackConfig out;
  if (config.max_concurrency() != 0) out.max_concurrency = config.max_concurrency();
  if (config.max_num_buffers() != 0) out.max_num_buffers = config.max_num_buffers();
  if (config.rcvbuf() != 0) out.udp_rcvbuf_bytes = config.rcvbuf();
  return out;
}

v1::Driver ToProtoDriver(nic::DriverKind kind) {
  switch (kind) {
    case nic::DriverKind::kAfXdp:
      return v1::DRIVER_AF_XDP;
    case nic::DriverKind::kVerbs:
      return v1::DRIVER_VERBS;
    case nic::DriverKind::kAuto:
      break;
  }
  return v1::DRIVER_AUTO;
}

}  // namespace offload::wire
