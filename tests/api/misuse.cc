// Compile-fail snippets for the typed socket API (run by misuse_check.sh,
// not compiled into any binary). Without a MISUSE_* macro this file must
// compile cleanly: that is the control, proving that the snippets fail
// because of the misuse and not because of a missing include. With each
// macro it must fail, and the diagnostic must contain the text after
// "want:" on that line.

#include <sys/uio.h>

#include "api/sock.h"

namespace os = offload::sock;

// Correct use of every role, so the control compiles the same code paths.
void Control(os::Acceptor& a, os::Stream& s, os::Dgram& d,
             os::ConnectedDgram& cd, os::LocalStream& l) {
  (void)a.accept();
  (void)os::Connector().connect(os::InetAddr::Loopback4(1));
  (void)s.send("x", 1);
  (void)s.send_n("x", 1);
  (void)s.set_no_delay(true);
  (void)d.send_to("x", 1, os::InetAddr::Loopback4(1));
  (void)cd.send("x", 1);
  (void)l.send_handle(s);
  (void)l.recv_handle<os::Stream>();
}

#if defined(MISUSE_ACCEPTOR_SEND)  // want: has no member named 'send'
void Misuse(os::Acceptor& a) { (void)a.send("x", 1); }
#elif defined(MISUSE_ACCEPTOR_RECV)        // want: has no member named 'recv_n'
void Misuse(os::Acceptor& a) {
  char b[1];
  (void)a.recv_n(b, 1);
}
#elif defined(MISUSE_CONNECTOR_OF_DGRAM)   // want: produces stream objects
os::BasicConnector<os::Dgram> connector;
#elif defined(MISUSE_ACCEPTOR_OF_DGRAM)    // want: produces stream objects
void Misuse(os::BasicAcceptor<os::ConnectedDgram>* a) { (void)a; }
os::BasicAcceptor<os::ConnectedDgram>* make();
auto x = make() -> local_addr();
#elif defined(MISUSE_CONNECT_INTO_DGRAM)   // want: conversion from
os::Result<os::Dgram> d = os::Connector().connect(os::InetAddr::Loopback4(1));
#elif defined(MISUSE_CONNECTOR_UNIX_ADDR)  // want: no matching function
auto s = os::Connector().connect(*os::UnixAddr::Path("/x"));
#elif defined(MISUSE_STREAM_ACCEPT)        // want: has no member named 'accept'
void Misuse(os::Stream& s) { (void)s.accept(); }
#elif defined(MISUSE_STREAM_SEND_TO)  // want: has no member named 'send_to'
void Misuse(os::Stream& s) {
  (void)s.send_to("x", 1, os::InetAddr::Loopback4(1));
}
#elif defined( \
    MISUSE_STREAM_SEND_HANDLE)        // want: has no member named 'send_handle'
void Misuse(os::Stream& s) { (void)s.send_handle(s); }
#elif defined(MISUSE_STREAM_COPY)     // want: use of deleted function
void Misuse(os::Stream& s) { os::Stream t = s; }
#elif defined(MISUSE_STREAM_FROM_FD)  // want: no matching function
os::Stream s(3);
#elif defined(MISUSE_STREAM_FROM_HANDLE)  // want: within this context
os::Stream s{os::Handle(3)};
#elif defined(MISUSE_DGRAM_SEND_N)        // want: has no member named 'send_n'
void Misuse(os::Dgram& d) { (void)d.send_n("x", 1); }
#elif defined( \
    MISUSE_CDGRAM_CLOSE_WRITER)  // want: has no member named 'close_writer'
void Misuse(os::ConnectedDgram& d) { (void)d.close_writer(); }
#elif defined(MISUSE_LOCAL_NO_DELAY)    // want: no matching function
void Misuse(os::LocalStream& l) { (void)l.set_no_delay(true); }
#elif defined(MISUSE_RESULT_AS_STREAM)  // want: has no member named 'send'
void Misuse() {
  auto s = os::Connector().connect(os::InetAddr::Loopback4(1));
  (void)s.send("x", 1);  // must check ok() and use s->send
}
#endif
