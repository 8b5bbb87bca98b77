// The stack's counters by name, for offloadctl stats (netstat -s style).
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/stack/stack.h"

namespace offload::stack {

void Stack::ForEachCounter(absl::FunctionRef<void(const char*, uint64_t)> fn) const {
  const StackCounters& s = counters_;
  fn("link.rx_frames", s.rx_frames);
  fn("link.tx_frames", s.tx_frames);
  fn("link.rx_not_for_us", s.rx_not_for_us);
  fn("link.tx_no_buffer", s.tx_no_buffer);
  fn("link.tx_queue_full", s.tx_queue_full);
  fn("ip.rx_checksum_errors", s.rx_checksum_errors);
  fn("ip.rx_checksum_partial", s.rx_checksum_partial);
  fn("ip.rx_fragments", s.rx_ip_fragments);
  fn("ip.rx_ipv6_not_offloaded", s.rx_ipv6_not_offloaded);
  for (size_t i = 0; i < static_cast<size_t>(net::ParseStatus::kCount); ++i) {
    const auto st = static_cast<net::ParseStatus>(i);
    if (st == net::ParseStatus::kOk) continue;
    std::string name = absl::StrCat("ip.drop.", net::ParseStatusName(st));
    fn(name.c_str(), s.rx_parse_drops[i]);
  }

  const net::ArpCounters& a = arp_.counters();
  fn("arp.in", s.arp_in);
  // The kernel resolves neighbours (StackConfig::neighbours): no ARP
  // request of ours goes on the wire; the attempts are arp.kernel_resolutions.
  fn("arp.requests_sent", 0);
  fn("arp.replies_sent", a.replies_sent);
  fn("arp.unresolved_output", s.neighbor_unresolved);
  fn("arp.kernel_resolutions", s.neighbor_requests);
  fn("arp.pending_dropped", a.pending_dropped);
  fn("arp.resolution_failed", a.resolution_failed);
  fn("arp.table_full", a.table_full);

  const tcp::TcpCounters& t = tcp_ctr_;
  fn("tcp.active_opens", t.active_opens);
  fn("tcp.passive_opens", t.passive_opens);
  fn("tcp.established", t.established);
  fn("tcp.segs_in", t.segs_in);
  fn("tcp.segs_out", t.segs_out);
  fn("tcp.data_segs_in", t.data_segs_in);
  fn("tcp.data_segs_out", t.data_segs_out);
  fn("tcp.retrans_segs", t.retrans_segs);
  fn("tcp.fast_retransmits", t.fast_retransmits);
  fn("tcp.sack_recoveries", t.sack_recoveries);
  fn("tcp.newreno_recoveries", t.newreno_recoveries);
  fn("tcp.rto_timeouts", t.rto_timeouts);
  fn("tcp.tail_loss_probes", t.tail_loss_probes);
  fn("tcp.reorder_timeouts", t.reorder_timeouts);
  fn("tcp.lost_retransmits", t.lost_retransmits);
  fn("tcp.recovery_undos", t.recovery_undos);
  fn("tcp.rto_undos", t.rto_undos);
  fn("tcp.reordering_seen", t.reordering_seen);
  fn("tcp.dsacks_received", t.dsacks_received);
  fn("tcp.dsacks_sent", t.dsacks_sent);
  fn("tcp.ooo_segments", t.ooo_segments);
  fn("tcp.ooo_dropped", t.ooo_dropped);
  fn("tcp.duplicate_segments", t.duplicate_segments);
  fn("tcp.beyond_buffer_dropped", t.beyond_buffer_dropped);
  fn("tcp.delayed_acks", t.delayed_acks);
  fn("tcp.zero_window_probes", t.zero_window_probes);
  fn("tcp.keepalive_probes", t.keepalive_probes);
  fn("tcp.timeouts", t.timeouts);
  fn("tcp.resets_received", t.resets_received);
  fn("tcp.resets_sent", t.resets_sent);
  fn("tcp.no_socket", s.tcp_no_socket);
  fn("tcp.syn_backlog_drops", s.tcp_syn_backlog_drops);
  fn("tcp.syn_no_memory", s.tcp_syn_no_memory);
  fn("tcp.listen_overflows", s.listen_overflows);
  fn("tcp.listen_drops", s.listen_drops);
  fn("tcp.syncookies_sent", t.syncookies_sent);
  fn("tcp.syncookies_recv", t.syncookies_recv);
  fn("tcp.syncookies_failed", t.syncookies_failed);
  fn("tcp.limited_transmits", t.limited_transmits);
  fn("tcp.user_timeouts", t.user_timeouts);
  fn("tcp.challenge_acks", t.challenge_acks);
  fn("tcp.challenge_acks_suppressed", t.challenge_acks_suppressed);
  fn("tcp.oow_acks_suppressed", t.oow_acks_suppressed);
  fn("tcp.out_of_window", t.out_of_window);
  fn("tcp.paws_rejected", t.paws_rejected);
  fn("tcp.ack_too_new", t.ack_too_new);
  fn("tcp.bad_app_index", t.bad_app_index);

  fn("udp.in", s.udp_in);
  fn("udp.out", s.udp_out);
  fn("udp.no_port", s.udp_no_port);
  fn("udp.queue_full", s.udp_queue_full);
  fn("udp.ipv6_in", s.udp6_in);
  fn("udp.ipv6_out", s.udp6_out);
  fn("udp.drop.ipv6_zero_checksum", s.udp6_zero_checksum);
  fn("udp.drop.ipv6_multicast_not_offloaded", s.udp6_multicast);
}

}  // namespace offload::stack
