// Wire plane reports -> control protocol (see wire_stats.h).

#include "daemon/control/wire_stats.h"

#include <utility>

#include "daemon/wire/config_mapping.h"

namespace offload::control {

std::vector<v1::InterfaceStatus> ToProto(const std::vector<wire::InterfaceReport>& reports) {
  std::vector<v1::InterfaceStatus> out;
  for (const wire::InterfaceReport& r : reports) {
    v1::InterfaceStatus s;
    s.set_name(r.name);
    s.set_driver(wire::ToProtoDriver(r.driver));
    s.set_queues(r.queues);
    s.set_zero_copy(r.zero_copy);
    switch (r.link) {
      case wire::LinkState::kGone: s.set_state("error: the interface disappeared"); break;
      case wire::LinkState::kDown: s.set_state("down"); break;
      case wire::LinkState::kNoCarrier: s.set_state("up, no carrier"); break;
      case wire::LinkState::kUp: s.set_state("up"); break;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<v1::EngineStats> ToProto(const std::vector<wire::EngineReport>& reports) {
  std::vector<v1::EngineStats> out;
  for (const wire::EngineReport& r : reports) {
    v1::EngineStats s;
    s.set_id(r.id);
    s.set_cpu(r.core >= 0 ? static_cast<uint32_t>(r.core) : 0);
    s.set_loops(r.loops);
    s.set_busy_polls(r.busy_polls);
    s.set_sleeps(r.sleeps);
    s.set_wakeups(r.wakeups);
    s.set_rx_packets(r.rx_packets);
    s.set_tx_packets(r.tx_packets);
    s.set_flows(r.flows);
    auto* m = s.mutable_counters();
    for (const auto& [name, v] : r.counters) (*m)[name] = v;
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<v1::NicStats> ToProto(const std::vector<wire::QueueReport>& reports) {
  std::vector<v1::NicStats> out;
  for (const wire::QueueReport& r : reports) {
    const nic::QueueStats& st = r.stats;
    auto drop = [&st](nic::DropReason d) { return st.drops[static_cast<int>(d)]; };
    v1::NicStats s;
    s.set_interface(r.interface);
    s.set_queue(r.queue);
    s.set_rx_packets(st.rx_packets);
    s.set_rx_bytes(st.rx_bytes);
    s.set_tx_packets(st.tx_packets);
    s.set_tx_bytes(st.tx_bytes);
    s.set_rx_drops(drop(nic::DropReason::kRxInvalidDescriptor) +
                   drop(nic::DropReason::kRxTruncated) + st.kernel_rx_dropped +
                   st.kernel_rx_invalid_descs);
    s.set_tx_drops(drop(nic::DropReason::kTxNoBuffer) + drop(nic::DropReason::kTxRingFull) +
                   drop(nic::DropReason::kTxError) + st.kernel_tx_invalid_descs);
    s.set_steered_flows(r.steered_flows);
    s.set_fault_rx_drops(st.fault_rx_drops);
    s.set_fault_tx_drops(st.fault_tx_drops);
    s.set_fault_rx_reorders(st.fault_rx_reorders);
    s.set_fault_tx_reorders(st.fault_tx_reorders);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace offload::control
