// Config parsing, defaults and validation: every error names its field.

#include "daemon/config/config.h"

#include <gtest/gtest.h>

#include <string>

namespace offload {
namespace config {
namespace {

v1::DaemonConfig Defaulted(const std::string& text) {
  absl::StatusOr<v1::DaemonConfig> c = ParseConfig(text, "test.conf");
  EXPECT_TRUE(c.ok()) << c.status();
  v1::DaemonConfig config = c.ok() ? *c : v1::DaemonConfig();
  ApplyDefaults(&config);
  return config;
}

TEST(Config, EmptyGivesValidDefaults) {
  v1::DaemonConfig c = Defaulted("");
  EXPECT_EQ(c.run_dir(), "/run/offloadd");
  EXPECT_EQ(c.rules_file(), "/etc/offloadd/rules.conf");
  EXPECT_EQ(c.num_cores(), 1u);
  EXPECT_EQ(c.rcvbuf(), 262144u);
  EXPECT_EQ(c.control_socket_mode(), "0660");
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
}

TEST(Config, ParsesTextFormat) {
  v1::DaemonConfig c = Defaulted(
      "run_dir: \"/tmp/off\"\nnum_cores: 2\nsndbuf: 1048576\n"
      "interfaces { name: \"eth1\" driver: DRIVER_AF_XDP queues: 2 }\n");
  EXPECT_EQ(c.run_dir(), "/tmp/off");
  EXPECT_EQ(c.num_cores(), 2u);
  ASSERT_EQ(c.interfaces_size(), 1);
  EXPECT_EQ(c.interfaces(0).driver(), v1::DRIVER_AF_XDP);
  EXPECT_TRUE(ValidateConfig(c).ok());
}

TEST(Config, SyntaxErrorNamesSourceLineAndColumn) {
  absl::StatusOr<v1::DaemonConfig> c = ParseConfig("num_cores: 2\nnum_coers: 3\n", "x.conf");
  ASSERT_FALSE(c.ok());
  const std::string msg(c.status().message());
  EXPECT_NE(msg.find("x.conf:2:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("num_coers"), std::string::npos) << msg;
}

TEST(Config, MissingFileIsNotFound) {
  absl::StatusOr<v1::DaemonConfig> c = LoadConfigFile("/nonexistent/offloadd.conf");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(c.status().message()).find("/nonexistent/offloadd.conf"),
            std::string::npos);
}

TEST(Config, ValidationNamesTheField) {
  struct Case {
    const char* text;
    const char* field;
  } cases[] = {
      {"num_cores: 65", "num_cores"},
      {"run_dir: \"relative\"", "run_dir"},
      {"rules_file: \"rules.conf\"", "rules_file"},
      {"log_level: \"loud\"", "log_level"},
      {"log_file: \"/tmp/a%d%d\"", "log_file"},
      {"log_file: \"/tmp/a%s\"", "log_file"},
      {"rcvbuf: 100", "rcvbuf"},
      {"sndbuf: 1000000000", "sndbuf"},
      {"max_num_buffers: 1", "max_num_buffers"},
      {"arena_bytes: 1000", "arena_bytes"},
      {"control_socket_mode: \"0999\"", "control_socket_mode"},
      {"control_socket_mode: \"0066\"", "control_socket_mode"},
      {"engine_poll_us: 2000000", "engine_poll_us"},
      {"interfaces { driver: DRIVER_VERBS }", "interfaces[0].name"},
      {"interfaces { name: \"averyveryverylongname\" }", "interfaces[0].name"},
      {"interfaces { name: \"eth0\" } interfaces { name: \"eth0\" }", "interfaces[1].name"},
      {"interfaces { name: \"eth0\" queues: 100 }", "interfaces[0].queues"},
  };
  for (const Case& c : cases) {
    v1::DaemonConfig config = Defaulted(c.text);
    absl::Status s = ValidateConfig(config);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(s.message()).rfind(c.field, 0), 0u)
        << c.text << " -> " << s.message();
  }
}

TEST(Config, SocketMode) {
  EXPECT_EQ(*ParseSocketMode("0660"), 0660u);
  EXPECT_EQ(*ParseSocketMode("666"), 0666u);
  EXPECT_FALSE(ParseSocketMode("").ok());
  EXPECT_FALSE(ParseSocketMode("rw").ok());
  EXPECT_FALSE(ParseSocketMode("0400").ok());
}

}  // namespace
}  // namespace config
}  // namespace offload
