"""Compiler flags shared by every target: one place to change them."""

# Daemon, CLI, tests.
OFFLOAD_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
]

# liboffload.so and everything it links: no exceptions, no RTTI, hidden symbols
# (only the interposed libc entry points and the extra API are exported).
CLIENT_COPTS = OFFLOAD_COPTS + [
    "-fno-exceptions",
    "-fno-rtti",
    "-fvisibility=hidden",
    "-fPIC",
    # The library is preloaded (loaded with the program), so its thread
    # locals can live in the static TLS block: a plain %fs-relative access
    # instead of a __tls_get_addr call on every send and receive.
    "-ftls-model=initial-exec",
]
