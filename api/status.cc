// Status::ToString; see status.h.

#include "api/status.h"

#include <string.h>

namespace offload::sock {

std::string Status::ToString() const {
  if (ok()) return "ok";
  char buf[256];
  // GNU strerror_r returns the message, which need not be in `buf`.
  const char* text = ::strerror_r(code_, buf, sizeof(buf));
  return std::string(op_) + ": " + text;
}

}  // namespace offload::sock
