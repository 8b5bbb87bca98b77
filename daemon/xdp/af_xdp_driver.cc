// af_xdp driver setup and steering (see header).

#include "daemon/xdp/af_xdp_driver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/nic/netdev.h"
#include "daemon/xdp/ntuple.h"

namespace offload::xdp {

absl::StatusOr<std::unique_ptr<AfXdpDriver>> AfXdpDriver::Create(
    const nic::InterfaceConfig& config) {
  absl::StatusOr<nic::InterfaceInfo> info = nic::QueryInterface(config.name);
  if (!info.ok()) return info.status();
  if (config.num_queues == 0 || config.num_queues > info->hw_rx_queues ||
      config.num_queues > OFFLOAD_XDP_MAX_QUEUES) {
    return absl::InvalidArgumentError(
        absl::StrCat("interface ", config.name, " has ", info->hw_rx_queues,
                     " RX queues; cannot open ", config.num_queues,
                     " (at most ", OFFLOAD_XDP_MAX_QUEUES, ")"));
  }
  std::unique_ptr<AfXdpDriver> d(new AfXdpDriver());
  d->ioctl_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (d->ioctl_fd_ < 0) {
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  d->info_ = *std::move(info);
  d->info_.driver = nic::DriverKind::kAfXdp;
  d->info_.num_queues = config.num_queues;

  absl::StatusOr<std::unique_ptr<SteerProgram>> program =
      SteerProgram::Attach(d->info_.ifindex, config.xdp_mode, config.max_flows);
  if (!program.ok()) return program.status();
  d->program_ = *std::move(program);

  bool all_zero_copy = true;
  for (uint32_t q = 0; q < config.num_queues; ++q) {
    absl::StatusOr<std::unique_ptr<AfXdpQueue>> queue =
        AfXdpQueue::Create(config.name, q, config, d->program_->xsks_map_fd());
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
  for (const auto& [key, location] : ntuple_rules_) {
    (void)NTupleDelete(ioctl_fd_, info_.name, location);
  }
  for (const auto& [group, membership] : groups_) close(membership.fd);
  queues_.clear();
  if (ioctl_fd_ >= 0) close(ioctl_fd_);
}

bool AfXdpDriver::hardware_steering() const {
  std::lock_guard<std::mutex> lock(steer_mu_);
  return ntuple_supported_;
}

absl::Status AfXdpDriver::Steer(const nic::FlowKey& flow, uint32_t queue) {
  if (queue >= queues_.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot steer ", flow.ToString(), " to queue ", queue, ": ", info_.name,
        " has ", queues_.size(), " open queues"));
  }
  std::lock_guard<std::mutex> lock(steer_mu_);
  const Key key{static_cast<int>(flow.proto), flow.local_ip, flow.local_port,
                flow.remote_ip, flow.remote_port};
  const bool multicast = nic::IsMulticast(flow.local_ip);
  const bool already = program_->HasFlow(flow);
  absl::Status status = program_->SetFlow(flow, queues_[queue]->id());
  if (!status.ok()) return status;
  if (multicast && !already) {
    status = JoinGroup(flow.local_ip);
    if (!status.ok()) {
      (void)program_->DeleteFlow(flow);
      return status;
    }
  }
  // IPv6 flows get no n-tuple rule (ntuple.cc writes IPv4 specs): with
  // several queues RSS decides for them and QUEUE_MISMATCH shows it.
  if (queues_.size() > 1 && ntuple_supported_ && !flow.ipv6) {
    // Re-steering moves the flow: drop the old rule first.
    if (auto it = ntuple_rules_.find(key); it != ntuple_rules_.end()) {
      (void)NTupleDelete(ioctl_fd_, info_.name, it->second);
      ntuple_rules_.erase(it);
    }
    absl::StatusOr<uint32_t> location =
        NTupleInsert(ioctl_fd_, info_.name, flow, queues_[queue]->id());
    if (location.ok()) {
      ntuple_rules_[key] = *location;
    } else if (absl::IsUnimplemented(location.status())) {
      ntuple_supported_ = false;  // RSS decides; QUEUE_MISMATCH shows it
    } else {
      (void)program_->DeleteFlow(flow);
      return location.status();
    }
  }
  return absl::OkStatus();
}

absl::Status AfXdpDriver::Unsteer(const nic::FlowKey& flow) {
  std::lock_guard<std::mutex> lock(steer_mu_);
  const Key key{static_cast<int>(flow.proto), flow.local_ip, flow.local_port,
                flow.remote_ip, flow.remote_port};
  if (auto it = flow.ipv6 ? ntuple_rules_.end() : ntuple_rules_.find(key);
      it != ntuple_rules_.end()) {
    (void)NTupleDelete(ioctl_fd_, info_.name, it->second);
    ntuple_rules_.erase(it);
  }
  absl::Status status = program_->DeleteFlow(flow);
  if (status.ok() && nic::IsMulticast(flow.local_ip)) LeaveGroup(flow.local_ip);
  return status;
}

absl::Status AfXdpDriver::JoinGroup(uint32_t group) {
  Membership& m = groups_[group];
  if (m.refs++ > 0) return absl::OkStatus();
  m.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ip_mreqn req;
  memset(&req, 0, sizeof(req));
  req.imr_multiaddr.s_addr = htonl(group);
  req.imr_ifindex = info_.ifindex;
  if (m.fd < 0 ||
      setsockopt(m.fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &req, sizeof(req)) != 0) {
    int err = errno;
    if (m.fd >= 0) close(m.fd);
    groups_.erase(group);
    return absl::InternalError(
        absl::StrCat("cannot join multicast group ",
                     nic::FlowKey::MulticastGroup(group, 1).ToString(), " on ",
                     info_.name, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

void AfXdpDriver::LeaveGroup(uint32_t group) {
  auto it = groups_.find(group);
  if (it == groups_.end() || --it->second.refs > 0) return;
  close(it->second.fd);  // closing the socket leaves the group
  groups_.erase(it);
}

}  // namespace offload::xdp
