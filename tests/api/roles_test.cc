// Role misuse does not compile: static assertions, with detection idioms,
// that each class has exactly the operations of its role. This file
// compiling is the test; the gtest case only makes it a test target. The
// compile-fail test (misuse_test) shows the same for real misuse snippets
// and what the compiler says.

#include <sys/uio.h>

#include <type_traits>
#include <utility>

#include "api/sock.h"
#include "gtest/gtest.h"

namespace offload::sock {
namespace {

template <class...>
using Void = void;

// `T` has a member callable as send(const void*, size_t) / recv(...).
template <class T, class = void>
struct HasSend : std::false_type {};
template <class T>
struct HasSend<T, Void<decltype(std::declval<T&>().send(
                      std::declval<const void*>(), size_t{}))>>
    : std::true_type {};

template <class T, class = void>
struct HasRecv : std::false_type {};
template <class T>
struct HasRecv<
    T, Void<decltype(std::declval<T&>().recv(std::declval<void*>(), size_t{}))>>
    : std::true_type {};

template <class T, class = void>
struct HasSendN : std::false_type {};
template <class T>
struct HasSendN<T, Void<decltype(std::declval<T&>().send_n(
                       std::declval<const void*>(), size_t{}))>>
    : std::true_type {};

template <class T, class = void>
struct HasAccept : std::false_type {};
template <class T>
struct HasAccept<T, Void<decltype(std::declval<T&>().accept())>>
    : std::true_type {};

template <class T, class = void>
struct HasSendTo : std::false_type {};
template <class T>
struct HasSendTo<T, Void<decltype(std::declval<T&>().send_to(
                        std::declval<const void*>(), size_t{},
                        std::declval<const InetAddr&>()))>> : std::true_type {};

template <class T, class = void>
struct HasCloseWriter : std::false_type {};
template <class T>
struct HasCloseWriter<T, Void<decltype(std::declval<T&>().close_writer())>>
    : std::true_type {};

template <class T, class = void>
struct HasSendHandle : std::false_type {};
template <class T>
struct HasSendHandle<T, Void<decltype(std::declval<T&>().send_handle(
                            std::declval<const Stream&>()))>> : std::true_type {
};

template <class T, class = void>
struct HasNoDelay : std::false_type {};
template <class T>
struct HasNoDelay<T, Void<decltype(std::declval<T&>().set_no_delay(true))>>
    : std::true_type {};

// What connect() returns, if it exists for this address type.
template <class C, class A, class = void>
struct ConnectResult {
  using type = void;
};
template <class C, class A>
struct ConnectResult<C, A,
                     Void<decltype(std::declval<const C&>().connect(
                         std::declval<const A&>()))>> {
  using type =
      decltype(std::declval<const C&>().connect(std::declval<const A&>()));
};

// --- Acceptor: accepts, never transfers data --------------------------------
static_assert(HasAccept<Acceptor>::value);
static_assert(!HasSend<Acceptor>::value, "an Acceptor cannot send");
static_assert(!HasRecv<Acceptor>::value, "an Acceptor cannot receive");
static_assert(!HasSendTo<Acceptor>::value);
static_assert(std::is_same<decltype(std::declval<Acceptor&>().accept()),
                           Result<Stream>>::value,
              "an Acceptor produces Streams");
static_assert(std::is_same<decltype(std::declval<LocalAcceptor&>().accept()),
                           Result<LocalStream>>::value);

// --- Connector: produces streams only ---------------------------------------
static_assert(std::is_same<ConnectResult<Connector, InetAddr>::type,
                           Result<Stream>>::value);
static_assert(std::is_same<ConnectResult<LocalConnector, UnixAddr>::type,
                           Result<LocalStream>>::value);
// A TCP connector takes no AF_UNIX address and the reverse.
static_assert(std::is_void<ConnectResult<Connector, UnixAddr>::type>::value);
static_assert(
    std::is_void<ConnectResult<LocalConnector, InetAddr>::type>::value);
static_assert(!HasSend<Connector>::value && !HasAccept<Connector>::value);
// BasicConnector<Dgram> / BasicAcceptor<Dgram> fail a static_assert inside
// the template ("produces stream objects only"); see misuse_test. What they
// check:
static_assert(detail::IsStream<Stream>::value);
static_assert(detail::IsStream<LocalStream>::value);
static_assert(!detail::IsStream<Dgram>::value);
static_assert(!detail::IsStream<ConnectedDgram>::value);
static_assert(!detail::IsStream<Acceptor>::value);

// --- Stream: transfers data, never accepts, connects or sends to ------------
static_assert(HasSend<Stream>::value && HasRecv<Stream>::value);
static_assert(HasSendN<Stream>::value && HasCloseWriter<Stream>::value);
static_assert(!HasAccept<Stream>::value);
static_assert(!HasSendTo<Stream>::value, "a Stream is connected");
static_assert(!HasSendHandle<Stream>::value,
              "only a LocalStream passes handles");
static_assert(HasNoDelay<Stream>::value);
static_assert(!HasNoDelay<LocalStream>::value, "TCP_NODELAY is TCP's");

// --- Datagrams: no stream calls ----------------------------------------------
static_assert(HasSendTo<Dgram>::value && !HasSend<Dgram>::value);
static_assert(!HasSendN<Dgram>::value && !HasAccept<Dgram>::value);
static_assert(HasSend<ConnectedDgram>::value && HasRecv<ConnectedDgram>::value);
static_assert(!HasSendN<ConnectedDgram>::value);
static_assert(!HasCloseWriter<ConnectedDgram>::value);
static_assert(!HasSendTo<ConnectedDgram>::value);

// --- LocalStream: a stream that also passes handles -------------------------
static_assert(HasSendHandle<LocalStream>::value);
static_assert(HasSendN<LocalStream>::value);

// --- Ownership: move-only, no implicit construction from a raw fd -----------
template <class T>
constexpr bool kMoveOnly =
    std::is_nothrow_move_constructible<T>::value&&
        std::is_nothrow_move_assignable<T>::value &&
    !std::is_copy_constructible<T>::value && !std::is_copy_assignable<T>::value;
static_assert(kMoveOnly<Handle> && kMoveOnly<Stream> && kMoveOnly<Acceptor> &&
              kMoveOnly<Dgram> && kMoveOnly<ConnectedDgram> &&
              kMoveOnly<LocalStream> && kMoveOnly<RecvView>);
static_assert(!std::is_constructible<Stream, int>::value);
static_assert(!std::is_constructible<Stream, Handle>::value,
              "only AdoptHandle (checked) turns a Handle into a Stream");
static_assert(!std::is_constructible<Acceptor, Handle>::value);
static_assert(!std::is_constructible<Dgram, int>::value);
static_assert(!std::is_convertible<int, Handle>::value);
// A socket object is not a SocketBase you can make yourself.
static_assert(!std::is_default_constructible<SocketBase>::value);

// --- Cheap values
// -------------------------------------------------------------
static_assert(sizeof(Stream) == sizeof(int), "a Stream is its descriptor");
static_assert(sizeof(IoResult) <= 2 * sizeof(void*));
static_assert(std::is_trivially_copyable<IoResult>::value);

TEST(RolesTest, CheckedAtCompileTime) { SUCCEED(); }

}  // namespace
}  // namespace offload::sock
