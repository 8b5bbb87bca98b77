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

#ifdef __cplusplus
extern "C" {
#endif

/* Deliberately not VMA's SO_VMA_GET_API (2800): the tables differ and VMA-aware
 * applications (sockperf) would call into the wrong slots. */
#define SO_OFFLOAD_GET_API 0x4f464c31

#define OFFLOAD_EXTRA_API_THREAD_OFFLOAD (1ull << 0)
#define OFFLOAD_EXTRA_API_ADD_CONF_RULE (1ull << 1)

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
};

/* Returns the API table; never NULL when liboffload.so is loaded. */
struct offload_api_t* offload_get_api(void);

#ifdef __cplusplus
}
#endif

#endif /* OFFLOAD_CLIENT_OFFLOAD_EXTRA_H_ */
