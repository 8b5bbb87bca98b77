// Driver selection (see header).

#include "daemon/nic/driver_factory.h"

#include "daemon/verbs/device_discovery.h"
#include "daemon/verbs/verbs_driver.h"
#include "daemon/xdp/af_xdp_driver.h"

namespace offload::nic {

DriverKind ResolveDriverKind(const InterfaceConfig& config) {
  if (config.driver != DriverKind::kAuto) return config.driver;
  return verbs::FindRdmaDevice(config.sysfs_root, config.name).ok()
             ? DriverKind::kVerbs
             : DriverKind::kAfXdp;
}

absl::StatusOr<std::unique_ptr<NicDriver>> OpenDriver(
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

}  // namespace offload::nic
