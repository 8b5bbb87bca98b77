// Driver selection (see header).

#include "daemon/nic/driver_factory.h"

#include <cstdlib>

#include "daemon/nic/fault_nic.h"
#include "daemon/nic/fault_spec.h"
#include "daemon/verbs/device_discovery.h"
#include "daemon/verbs/verbs_driver.h"
#include "daemon/xdp/af_xdp_driver.h"
#include "spdlog/spdlog.h"

namespace offload::nic {

DriverKind ResolveDriverKind(const InterfaceConfig& config) {
  if (config.driver != DriverKind::kAuto) return config.driver;
  return verbs::FindRdmaDevice(config.sysfs_root, config.name).ok()
             ? DriverKind::kVerbs
             : DriverKind::kAfXdp;
}

namespace {

absl::StatusOr<std::unique_ptr<NicDriver>> OpenResolvedDriver(
    const InterfaceConfig& config) {
  switch (ResolveDriverKind(config)) {
    case DriverKind::kVerbs: {
      auto d = verbs::VerbsDriver::Create(config);
      if (!d.ok()) return d.status();
      return std::unique_ptr<NicDriver>(*std::move(d));
    }
    case DriverKind::kAfXdp:
    case DriverKind::kAuto: {
      auto d = xdp::AfXdpDriver::Create(config);
      if (!d.ok()) return d.status();
      return std::unique_ptr<NicDriver>(*std::move(d));
    }
  }
  return absl::InvalidArgumentError("unknown driver kind");
}

}  // namespace

absl::StatusOr<std::unique_ptr<NicDriver>> OpenDriver(
    const InterfaceConfig& config) {
  // Parsed before the driver opens: a typo fails start-up before the
  // interface is touched.
  const char* fault_env = std::getenv(kFaultEnvVar);
  absl::StatusOr<FaultSpec> faults =
      ParseFaultSpec(fault_env != nullptr ? fault_env : "");
  if (!faults.ok()) return faults.status();
  absl::StatusOr<std::unique_ptr<NicDriver>> driver = OpenResolvedDriver(config);
  if (!driver.ok() || !faults->active()) return driver;
  spdlog::warn(
      "{} is set: injecting faults on interface {} ({}); for tests only, "
      "never in production",
      kFaultEnvVar, config.name, faults->ToString());
  return std::unique_ptr<NicDriver>(
      std::make_unique<FaultNicDriver>(*std::move(driver), *faults));
}

}  // namespace offload::nic
