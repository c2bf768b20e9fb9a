/*
 * Test-only LD_PRELOAD fault injection (websocket-server/src/upgrade-in-place.int.test.ts).
 *
 * uWS turns an HTTP socket into a WebSocket by realloc()ing the socket's block down to the
 * WebSocket's size. glibc shrinks in place and hands the tail back to the heap, where the next
 * allocation may overwrite it. The HTTP response's `state` word lived in that tail; after an upgrade
 * made inside res.cork(), this uWS build's cork() misses the upgrade (same address) and reads that
 * word: CONNECTION_CLOSE set and RESPONSE_PENDING clear closes the new WebSocket without a close
 * frame, right after its 101.
 *
 * Here every shrinking realloc made by the uWS addon keeps its block whole (realloc may return the
 * same pointer) and fills the tail with UWS_REALLOC_TAIL_BYTE: what an unlucky reuse of that memory
 * leaves there, every time. One line per such realloc on stderr shows the injection ran.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_realloc(void *ptr, size_t size);

static __thread int inside;

static int called_from_uws(void *caller) {
  Dl_info info;
  return dladdr(caller, &info) && info.dli_fname != NULL && strstr(info.dli_fname, "/uws_") != NULL;
}

void *realloc(void *ptr, size_t size) {
  void *caller = __builtin_return_address(0);
  const char *fill = getenv("UWS_REALLOC_TAIL_BYTE");
  if (inside || ptr == NULL || fill == NULL) return __libc_realloc(ptr, size);
  inside = 1;
  size_t usable = malloc_usable_size(ptr);
  void *result;
  if (size <= usable && called_from_uws(caller)) {
    memset((char *)ptr + size, (int)strtol(fill, NULL, 0), usable - size);
    char line[160];
    int n = snprintf(line, sizeof line, "realloc-in-place: uws block %p kept at %zu bytes, tail [%zu,%zu) filled\n",
                     ptr, usable, size, usable);
    if (n > 0) (void)!write(2, line, (size_t)n);
    result = ptr;
  } else {
    result = __libc_realloc(ptr, size);
  }
  inside = 0;
  return result;
}
