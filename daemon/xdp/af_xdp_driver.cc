// af_xdp driver setup and steering (see header).

#include "daemon/xdp/af_xdp_driver.h"

#include "absl/strings/str_cat.h"
#include "daemon/nic/netdev.h"

namespace offload::xdp {

absl::StatusOr<std::unique_ptr<AfXdpDriver>> AfXdpDriver::Create(
    const nic::InterfaceConfig& config) {
  absl::StatusOr<nic::InterfaceInfo> info = nic::QueryInterface(config.name);
  if (!info.ok()) return info.status();
  if (config.num_queues == 0 || config.num_queues > info->hw_rx_queues ||
      config.num_queues > OFFLOAD_XDP_MAX_QUEUES) {
    return absl::InvalidArgumentError(absl::StrCat(
        "interface ", config.name, " has ", info->hw_rx_queues,
        " RX queues; cannot open ", config.num_queues, " (at most ",
        OFFLOAD_XDP_MAX_QUEUES, ")"));
  }
  std::unique_ptr<AfXdpDriver> d(new AfXdpDriver());
  d->info_ = *std::move(info);
  d->info_.driver = nic::DriverKind::kAfXdp;
  d->info_.num_queues = config.num_queues;

  absl::StatusOr<std::unique_ptr<SteerProgram>> program = SteerProgram::Attach(
      d->info_.ifindex, config.xdp_mode, config.max_flows);
  if (!program.ok()) return program.status();
  d->program_ = *std::move(program);

  bool all_zero_copy = true;
  for (uint32_t q = 0; q < config.num_queues; ++q) {
    absl::StatusOr<std::unique_ptr<AfXdpQueue>> queue = AfXdpQueue::Create(
        config.name, q, config, d->program_->xsks_map_fd());
    if (!queue.ok()) return queue.status();
    all_zero_copy = all_zero_copy && (*queue)->zero_copy();
    d->queues_.push_back(*std::move(queue));
  }
  d->info_.zero_copy = all_zero_copy;
  return d;
}

AfXdpDriver::~AfXdpDriver() {
  // Detach first: from here on the kernel gets every packet.
  program_.reset();
  queues_.clear();
}

absl::Status AfXdpDriver::Steer(const nic::FlowKey& flow, uint32_t queue) {
  if (queue >= queues_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot steer ", flow.ToString(), " to queue ", queue,
                     ": ", info_.name, " has ", queues_.size(),
                     " open queues"));
  }
  std::lock_guard<std::mutex> lock(steer_mu_);
  return program_->SetFlow(flow, queues_[queue]->id());
}

absl::Status AfXdpDriver::Unsteer(const nic::FlowKey& flow) {
  std::lock_guard<std::mutex> lock(steer_mu_);
  return program_->DeleteFlow(flow);
}

}  // namespace offload::xdp
