/*
 * The offload extra API, for applications that want to steer liboffload.so
 * at run time (VMA extra-API style). Detect it at run time, so the same
 * binary runs with and without the preload library:
 *
 *   #include <dlfcn.h>
 *   #include "offload_extra.h"
 *   struct offload_api_t* (*get)(void) =
 *       (struct offload_api_t* (*)(void))dlsym(RTLD_DEFAULT, "offload_get_api");
 *   struct offload_api_t* api = get ? get() : NULL;
 *   if (api) api->thread_offload(0, pthread_self());   // this thread: kernel
 *
 * or, VMA style, getsockopt(-1, SOL_SOCKET, SO_OFFLOAD_GET_API, &api, &len).
 */
#ifndef OFFLOAD_CLIENT_OFFLOAD_EXTRA_H_
#define OFFLOAD_CLIENT_OFFLOAD_EXTRA_H_

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Deliberately not VMA's SO_VMA_GET_API (2800): the tables differ and VMA-aware
 * applications (sockperf) would call into the wrong slots. */
#define SO_OFFLOAD_GET_API 0x4f464c31

#define OFFLOAD_EXTRA_API_THREAD_OFFLOAD (1ull << 0)
#define OFFLOAD_EXTRA_API_ADD_CONF_RULE (1ull << 1)
/* Zero-copy receive and the receive filter callback, for offloaded UDP
 * sockets (same-host datagram rings and engine endpoints on the wire). */
#define OFFLOAD_EXTRA_API_RECVFROM_ZCOPY (1ull << 2)
#define OFFLOAD_EXTRA_API_FREE_PACKETS (1ull << 3)
#define OFFLOAD_EXTRA_API_REGISTER_RECV_CALLBACK (1ull << 4)

/* ---- Zero-copy receive (VMA's recvfrom_zcopy / free_packets) ----------
 *
 * Names map one to one onto VMA's vma_extra.h (same numeric flag values,
 * same structure layouts, so code written for VMA ports by renaming):
 *
 *   OFFLOAD_MSG_ZCOPY_FORCE   MSG_VMA_ZCOPY_FORCE
 *   OFFLOAD_MSG_ZCOPY         MSG_VMA_ZCOPY
 *   offload_packet_t          struct vma_packet_t
 *   offload_packets_t         struct vma_packets_t
 *   offload_info_t            struct vma_info_t
 *   offload_recv_callback_t   vma_recv_callback_t
 *   OFFLOAD_PACKET_DROP/RECV/HOLD  VMA_PACKET_DROP/RECV/HOLD
 *
 * Where the datagrams are. An offloaded UDP socket receives through
 * datagram rings in shared memory: one per same-host sender socket, and one
 * from the engine when offloadd serves the wire. Each datagram is one
 * contiguous record in a ring, so a zero-copy packet always has exactly one
 * iovec, pointing into the ring (read-only for the application: never
 * write through it). Datagrams from kernel senders arrive on the socket's
 * kernel side and can only be copied.
 *
 * Buffers the application holds (from recvfrom_zcopy, or HOLD in the
 * callback) stay in the ring until free_packets: they count against the
 * socket's receive queue exactly as unread datagrams do. Ring space is
 * released in ring order: freeing a packet while an older one of the same
 * ring is still held releases nothing yet (the freed one is released
 * together with the older one later). A socket that holds its whole ring
 * drops what arrives next, as the kernel drops on a full receive buffer
 * (counted in `offloadctl stats` drops: the sending socket's for a
 * same-host sender, this socket's for the engine). The ring belongs to
 * that one socket: other sockets, and other processes, are not affected, and a
 * process that dies holding buffers loses nothing for anyone else
 * (offloadd closes its rings; senders go on to the kernel path).
 *
 * Lifetime: a held buffer stays valid until free_packets or close() of the
 * socket (close releases everything the socket holds; its pointers are
 * then dangling, as with VMA). If the socket goes back to the kernel while
 * buffers are held (it becomes shared with another process: fork, exec,
 * SCM_RIGHTS), the ring space is given back at that moment so that the
 * other holders neither lose nor see again anything; the held buffers stay
 * mapped and free_packets on them still returns 0, but a sender racing
 * with that switch (a same-host sender's last send, the engine until it
 * has closed the endpoint) may overwrite their bytes. Free before forking.
 */
#define OFFLOAD_MSG_ZCOPY_FORCE 0x01000000 /* in: never copy (else EIO) */
#define OFFLOAD_MSG_ZCOPY 0x00040000       /* out: a packets descriptor was written */

/* One datagram lent by recvfrom_zcopy (or held by a callback). */
struct offload_packet_t {
  void* packet_id;      /* the library's handle, for free_packets */
  size_t sz_iov;        /* number of iovecs (always 1 here) */
  struct iovec iov[];   /* where the payload is, in the ring */
};

/* What recvfrom_zcopy writes at the start of the caller's buffer. */
struct offload_packets_t {
  size_t n_packet_num;  /* packets described (always 1 per call here) */
  struct offload_packet_t pkts[];
};

/* Passed to the receive callback; valid only during the call. */
struct offload_info_t {
  size_t struct_sz;                 /* sizeof(struct offload_info_t) */
  void* packet_id;                  /* the handle to free_packets a HOLD packet with */
  struct sockaddr_in* src;          /* the datagram's source (network order); on an
                                       AF_INET6 socket a struct sockaddr_in6 */
  struct sockaddr_in* dst;          /* the socket's local address (as getsockname;
                                       AF_INET6 socket: a struct sockaddr_in6) */
  size_t payload_sz;                /* datagram length */
  uint32_t socket_ready_queue_pkt_count;   /* not tracked: 0 */
  uint32_t socket_ready_queue_byte_count;  /* bytes (records with their headers)
                                              queued after this one in its ring */
  struct timespec hw_timestamp;     /* not provided: zero */
  struct timespec sw_timestamp;     /* not provided: zero */
};

typedef enum {
  OFFLOAD_PACKET_DROP = 0, /* discard the datagram (its ring space is released) */
  OFFLOAD_PACKET_RECV = 1, /* deliver it to the socket's ordinary receive calls */
  OFFLOAD_PACKET_HOLD = 2  /* the application keeps it in place until free_packets */
} offload_recv_callback_retval_t;

/* The receive filter: `iov` (`sz_iov` == 1) points at the datagram in the
 * ring, `info` describes it, `context` is the registration's. */
typedef offload_recv_callback_retval_t (*offload_recv_callback_t)(int fd, size_t sz_iov,
                                                                  struct iovec iov[],
                                                                  struct offload_info_t* info,
                                                                  void* context);

struct offload_api_t {
  /* Sockets created afterwards by thread `tid` are offloaded (offload = 1)
   * or kernel sockets (offload = 0). Returns 0, or -1 with errno. */
  int (*thread_offload)(int offload, pthread_t tid);
  /* Adds one libvma.conf `use ...` line on top of this process's rules
   * (checked before the daemon's table). Returns 0, or -1 if it does not
   * parse (the reason is logged). */
  int (*add_conf_rule)(const char* config_line);
  /* OFFLOAD_EXTRA_API_* bits of what this library implements. */
  uint64_t cap_mask;

  /* The members below exist when cap_mask has their bit. */

  /* OFFLOAD_EXTRA_API_REGISTER_RECV_CALLBACK. Sets (or with NULL removes)
   * the receive filter of UDP socket `fd`. Returns 0; or -1 with errno
   * EINVAL when `fd` is not a UDP socket of this library that is offloaded
   * or still undecided (a socket on the kernel: a rule or thread_offload
   * kept it there, no daemon, or it went back to the kernel when shared
   * with another process -- VMA answers EINVAL for sockets it does not
   * offload). A callback registered on an undecided socket that then stays
   * on the kernel is never called.
   *
   * When it is called: once per datagram of the socket's rings, in ring
   * order, by the application thread that looks at the socket through this
   * library -- recv, recvfrom, recvmsg, read, readv, recvfrom_zcopy (before
   * delivering), and poll, ppoll, select, pselect, epoll_wait and ioctl
   * FIONREAD (while deciding readiness: a socket whose datagrams were all
   * dropped or held is not readable). Never from a thread of the library
   * and never for datagrams from kernel senders (those are not offloaded).
   * A datagram answered RECV is not shown to the callback again. It runs
   * with the socket's receive lock held: it may send (on any socket) and
   * make control calls, but must not receive from, free_packets on or
   * register_recv_callback on the same socket (-1 EDEADLK if it does), as
   * VMA forbids free_packets in the callback. HOLD: the packet stays in the ring, is never delivered by a
   * receive call, and is the application's until free_packets(fd, pkt, 1)
   * with pkt.packet_id = info->packet_id; `iov` may be copied and used
   * until then. */
  int (*register_recv_callback)(int fd, offload_recv_callback_t callback, void* context);

  /* OFFLOAD_EXTRA_API_RECVFROM_ZCOPY. Receives the next datagram of UDP
   * socket `fd` without copying it: `buf` (`len` bytes) receives an
   * offload_packets_t with one packet and one iovec (at least
   * sizeof(offload_packets_t) + sizeof(offload_packet_t) + sizeof(struct
   * iovec) = 40 bytes, else -1 ENOBUFS and nothing is consumed; VMA instead
   * consumes the packet and reports MSG_TRUNC with no iovec), and
   * OFFLOAD_MSG_ZCOPY is set in *flags. Returns the datagram's length.
   * The packet is the caller's until free_packets.
   *
   * *flags in: MSG_DONTWAIT, MSG_PEEK, OFFLOAD_MSG_ZCOPY_FORCE. When zero
   * copy cannot apply -- the next datagram came from a kernel sender, the
   * socket is on the kernel (not offloaded, or shared after fork), MSG_PEEK,
   * or `fd` is not a UDP socket of ours -- the datagram is copied into
   * `buf` as recvfrom(fd, buf, len, *flags) would, OFFLOAD_MSG_ZCOPY is
   * cleared in *flags, and the byte count is returned; with
   * OFFLOAD_MSG_ZCOPY_FORCE it returns -1 EIO instead and the datagram stays
   * queued (VMA). Blocking, timeouts (SO_RCVTIMEO), EAGAIN and `from` /
   * `fromlen` are as for recvfrom. */
  int (*recvfrom_zcopy)(int fd, void* buf, size_t len, int* flags, struct sockaddr* from,
                        socklen_t* fromlen);

  /* OFFLOAD_EXTRA_API_FREE_PACKETS. Gives back `count` packets (their
   * packet_id; sz_iov and iov are not read) received on `fd` by
   * recvfrom_zcopy or held by its callback. Returns 0; -1 EINVAL when `fd`
   * is not an offloaded UDP socket of ours (VMA: not offloaded), or -1
   * ENOENT at the first packet this socket does not hold (not from it,
   * already freed); the packets before it are freed. One call takes the
   * socket's receive lock once and gives ring space back once per run of
   * consecutive packets of one ring: freeing many packets in one call
   * costs less per packet than one call each. */
  int (*free_packets)(int fd, struct offload_packet_t* pkts, size_t count);
};

/* Returns the API table; never NULL when liboffload.so is loaded. */
struct offload_api_t* offload_get_api(void);

#ifdef __cplusplus
}
#endif

#endif /* OFFLOAD_CLIENT_OFFLOAD_EXTRA_H_ */
