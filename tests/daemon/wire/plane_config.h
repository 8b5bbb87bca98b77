// The wire tests' daemon configuration: one interface on one engine, small
// pools, defaults applied. The veth tests name "va"; the fake-NIC tests
// "fake0".
#ifndef OFFLOAD_TESTS_DAEMON_WIRE_PLANE_CONFIG_H_
#define OFFLOAD_TESTS_DAEMON_WIRE_PLANE_CONFIG_H_

#include <string>

#include "daemon/config/config.h"

namespace offload::testing {

inline v1::DaemonConfig OneQueueConfig(const std::string& name) {
  v1::DaemonConfig c;
  c.set_run_dir("/nonexistent");
  auto* itf = c.add_interfaces();
  itf->set_name(name);
  itf->set_driver(v1::DRIVER_AF_XDP);
  c.set_num_cores(1);
  c.set_max_concurrency(64);
  c.set_max_num_buffers(2048);
  c.set_engine_poll_us(20);
  config::ApplyDefaults(&c);
  return c;
}

}  // namespace offload::testing

#endif  // OFFLOAD_TESTS_DAEMON_WIRE_PLANE_CONFIG_H_
