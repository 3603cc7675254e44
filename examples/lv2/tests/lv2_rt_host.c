/*
 * A minimal real-time LV2 host on lilv that counts the plugin's allocations
 * inside run() (scripts/test-lv2.sh):
 *
 *   lv2_rt_host PLUGIN_URI MODEL_PACKAGE
 *
 * It gives the plugin urid:map, log and a worker (a thread fed through a
 * preallocated ring, as jalv's), then runs blocks of 512 frames of a test
 * tone while it:
 *   1. runs hpss, 2. switches to center through the control port, 3. sends a
 *   patch:Set of MODEL_PACKAGE and switches to the model, waiting (between
 *   blocks, as a host's clock would) until the plugin has echoed the path on
 *   its notify port and the reported latency is the model's, 4. goes on with
 *   the model.
 * malloc, calloc, realloc, free and the aligned allocators are interposed in
 * this program; those called on the audio thread while run() (or
 * work_response) executes are counted, and must be none (those in
 * activate(), which opens a separator, must be seen: the counter works).
 * Exit 0 when run()'s count is zero and every stage was reached.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lilv/lilv.h>
#include <lv2/atom/atom.h>
#include <lv2/atom/forge.h>
#include <lv2/atom/util.h>
#include <lv2/log/log.h>
#include <lv2/patch/patch.h>
#include <lv2/urid/urid.h>
#include <lv2/worker/worker.h>

/* ----- allocation counting ----- */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static __thread int counting;
static atomic_long allocations;

void *malloc(size_t n) {
  if (counting) atomic_fetch_add(&allocations, 1);
  return __libc_malloc(n);
}
void *calloc(size_t n, size_t s) {
  if (counting) atomic_fetch_add(&allocations, 1);
  return __libc_calloc(n, s);
}
void *realloc(void *p, size_t n) {
  if (counting) atomic_fetch_add(&allocations, 1);
  return __libc_realloc(p, n);
}
void free(void *p) {
  if (counting && p) atomic_fetch_add(&allocations, 1);
  __libc_free(p);
}
int posix_memalign(void **out, size_t align, size_t n) {
  if (counting) atomic_fetch_add(&allocations, 1);
  void *p = __libc_memalign(align, n);
  if (!p) return 12; /* ENOMEM */
  *out = p;
  return 0;
}
void *aligned_alloc(size_t align, size_t n) {
  if (counting) atomic_fetch_add(&allocations, 1);
  return __libc_memalign(align, n);
}
void *memalign(size_t align, size_t n) {
  if (counting) atomic_fetch_add(&allocations, 1);
  return __libc_memalign(align, n);
}

/* ----- urid:map (filled before run; map() after that only looks up) ----- */

static char *uris[256];
static int n_uris;
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;

static LV2_URID map_uri(LV2_URID_Map_Handle h, const char *uri) {
  (void)h;
  pthread_mutex_lock(&map_lock);
  for (int i = 0; i < n_uris; i++) {
    if (!strcmp(uris[i], uri)) {
      pthread_mutex_unlock(&map_lock);
      return (LV2_URID)(i + 1);
    }
  }
  LV2_URID id = 0;
  if (n_uris < 256) {
    uris[n_uris] = strdup(uri);
    id = (LV2_URID)++n_uris;
  }
  pthread_mutex_unlock(&map_lock);
  return id;
}

static int log_printf(LV2_Log_Handle h, LV2_URID type, const char *fmt, ...) {
  (void)h;
  (void)type;
  va_list ap;
  va_start(ap, fmt);
  int n = vfprintf(stderr, fmt, ap);
  va_end(ap);
  return n;
}
static int log_vprintf(LV2_Log_Handle h, LV2_URID type, const char *fmt, va_list ap) {
  (void)h;
  (void)type;
  return vfprintf(stderr, fmt, ap);
}

/* ----- the worker: one thread, single-producer single-consumer rings ----- */

enum { RING = 1 << 16 };
typedef struct {
  unsigned char buf[RING];
  atomic_size_t head, tail; /* bytes written, read */
} ring;

static int ring_write(ring *r, const void *data, uint32_t size) {
  size_t head = atomic_load(&r->head), tail = atomic_load(&r->tail);
  if (RING - (head - tail) < size + sizeof size) return 0;
  const unsigned char *src[2] = {(const unsigned char *)&size, data};
  size_t len[2] = {sizeof size, size};
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < len[k]; i++) r->buf[(head + i) % RING] = src[k][i];
    head += len[k];
  }
  atomic_store(&r->head, head);
  return 1;
}

/* Reads one message into `out` (of `cap` bytes); its size, or 0 when empty. */
static uint32_t ring_read(ring *r, void *out, size_t cap) {
  size_t head = atomic_load(&r->head), tail = atomic_load(&r->tail);
  if (head == tail) return 0;
  uint32_t size = 0;
  for (size_t i = 0; i < sizeof size; i++) ((unsigned char *)&size)[i] = r->buf[(tail + i) % RING];
  tail += sizeof size;
  for (size_t i = 0; i < size && i < cap; i++) ((unsigned char *)out)[i] = r->buf[(tail + i) % RING];
  atomic_store(&r->tail, tail + size);
  return size;
}

static ring requests, responses;
static const LV2_Worker_Interface *worker_iface;
static LV2_Handle instance_handle;
static atomic_int stop_worker;

static LV2_Worker_Status schedule_work(LV2_Worker_Schedule_Handle h, uint32_t size, const void *data) {
  (void)h;
  return ring_write(&requests, data, size) ? LV2_WORKER_SUCCESS : LV2_WORKER_ERR_NO_SPACE;
}
static LV2_Worker_Status respond(LV2_Worker_Respond_Handle h, uint32_t size, const void *data) {
  (void)h;
  return ring_write(&responses, data, size) ? LV2_WORKER_SUCCESS : LV2_WORKER_ERR_NO_SPACE;
}
static void *worker_main(void *arg) {
  (void)arg;
  static unsigned char msg[RING];
  struct timespec pause = {0, 1000000};
  while (!atomic_load(&stop_worker)) {
    uint32_t n = ring_read(&requests, msg, sizeof msg);
    if (n) {
      worker_iface->work(instance_handle, respond, NULL, n, msg);
    } else {
      nanosleep(&pause, NULL);
    }
  }
  return NULL;
}

/* ----- the host ----- */

enum { BLOCK = 512, RATE = 44100 };

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: lv2_rt_host PLUGIN_URI MODEL_PACKAGE\n");
    return 2;
  }
  LilvWorld *world = lilv_world_new();
  lilv_world_load_all(world);
  LilvNode *uri = lilv_new_uri(world, argv[1]);
  const LilvPlugin *plugin = lilv_plugins_get_by_uri(lilv_world_get_all_plugins(world), uri);
  if (!plugin) {
    fprintf(stderr, "lv2_rt_host: %s not found (LV2_PATH?)\n", argv[1]);
    return 1;
  }
  LV2_URID_Map map = {NULL, map_uri};
  LV2_Log_Log log = {NULL, log_printf, log_vprintf};
  LV2_Worker_Schedule schedule = {NULL, schedule_work};
  LV2_Feature f_map = {LV2_URID__map, &map}, f_log = {LV2_LOG__log, &log},
              f_sched = {LV2_WORKER__schedule, &schedule};
  const LV2_Feature *features[] = {&f_map, &f_log, &f_sched, NULL};
  LilvInstance *inst = lilv_plugin_instantiate(plugin, RATE, features);
  if (!inst) {
    fprintf(stderr, "lv2_rt_host: instantiate failed\n");
    return 1;
  }
  instance_handle = lilv_instance_get_handle(inst);
  worker_iface = lilv_instance_get_extension_data(inst, LV2_WORKER__interface);
  if (!worker_iface) {
    fprintf(stderr, "lv2_rt_host: no worker interface\n");
    return 1;
  }
  pthread_t worker;
  pthread_create(&worker, NULL, worker_main, NULL);

  static float in[2][BLOCK], out[2][BLOCK];
  float separator = 0, stem = 0, mode = 0, mix = 1, latency = -1;
  /* The control port's atom sequence: written by the host before each run. */
  static uint8_t control[4096];
  static union {
    LV2_Atom atom;
    uint8_t bytes[4096];
  } notify;
  lilv_instance_connect_port(inst, 0, in[0]);
  lilv_instance_connect_port(inst, 1, in[1]);
  lilv_instance_connect_port(inst, 2, out[0]);
  lilv_instance_connect_port(inst, 3, out[1]);
  lilv_instance_connect_port(inst, 4, &separator);
  lilv_instance_connect_port(inst, 5, &stem);
  lilv_instance_connect_port(inst, 6, &mode);
  lilv_instance_connect_port(inst, 7, &mix);
  lilv_instance_connect_port(inst, 8, &latency);
  lilv_instance_connect_port(inst, 9, control);
  lilv_instance_connect_port(inst, 10, &notify);
  LV2_Atom_Forge forge;
  lv2_atom_forge_init(&forge, &map);
  LV2_URID patch_set = map_uri(NULL, LV2_PATCH__Set), patch_property = map_uri(NULL, LV2_PATCH__property),
           patch_value = map_uri(NULL, LV2_PATCH__value), model_key = map_uri(NULL, "https://splitsound.dev/lv2/splitsound#model");
  /* The interposed allocator sees the plugin's and the library's allocations:
     activate() opens hpss, which allocates. */
  counting = 1;
  lilv_instance_activate(inst);
  counting = 0;
  long activate_allocations = atomic_exchange(&allocations, 0);
  if (activate_allocations == 0) {
    fprintf(stderr, "lv2_rt_host: no allocation seen in activate(): the counter does not see the plugin's\n");
    return 1;
  }

  static unsigned char msg[RING];
  long frame = 0;
  int stage = 0, told = 0;
  float hpss_latency = -1, center_latency = -1;
  struct timespec tick = {0, 2000000};
  for (long block = 0; block < 20000 && stage < 5; block++) {
    for (int i = 0; i < BLOCK; i++, frame++) {
      float t = (float)frame / RATE;
      in[0][i] = 0.3f * sinf(2 * 3.14159265f * 220 * t) + 0.1f * sinf(2 * 3.14159265f * 3000 * t);
      in[1][i] = 0.3f * sinf(2 * 3.14159265f * 330 * t);
    }
    /* The host's control events for this cycle. */
    lv2_atom_forge_set_buffer(&forge, control, sizeof control);
    LV2_Atom_Forge_Frame seq;
    lv2_atom_forge_sequence_head(&forge, &seq, 0);
    if (stage == 2) {
      LV2_Atom_Forge_Frame obj;
      lv2_atom_forge_frame_time(&forge, 0);
      lv2_atom_forge_object(&forge, &obj, 0, patch_set);
      lv2_atom_forge_key(&forge, patch_property);
      lv2_atom_forge_urid(&forge, model_key);
      lv2_atom_forge_key(&forge, patch_value);
      lv2_atom_forge_path(&forge, argv[2], (uint32_t)strlen(argv[2]) + 1);
      lv2_atom_forge_pop(&forge, &obj);
      separator = 2;
      stage = 3;
    }
    lv2_atom_forge_pop(&forge, &seq);

    /* The notify port's capacity, as a host sets it before each cycle. */
    notify.atom.type = map_uri(NULL, LV2_ATOM__Chunk);
    notify.atom.size = sizeof notify - sizeof(LV2_Atom);
    counting = 1;
    lilv_instance_run(inst, BLOCK);
    uint32_t n;
    while ((n = ring_read(&responses, msg, sizeof msg)) != 0) {
      worker_iface->work_response(instance_handle, n, msg);
    }
    counting = 0;

    if (stage == 0 && latency > 0) {
      hpss_latency = latency;
      separator = 1;
      stage = 1;
      fprintf(stderr, "lv2_rt_host: hpss, latency %.0f; switching to center\n", latency);
    } else if (stage == 1 && latency > 0 && latency != hpss_latency) {
      center_latency = latency;
      stage = 2;
      fprintf(stderr, "lv2_rt_host: center, latency %.0f; sending the model path\n", latency);
    } else if (stage == 3 && !told && notify.atom.size > sizeof(LV2_Atom_Sequence_Body)) {
      /* The plugin tells the host the path it took (a patch:Set on its notify port). */
      const LV2_Atom_Event *ev = lv2_atom_sequence_begin(&((LV2_Atom_Sequence *)&notify)->body);
      const LV2_Atom_Object *obj = (const LV2_Atom_Object *)&ev->body;
      const LV2_Atom *value = NULL;
      lv2_atom_object_get(obj, patch_value, &value, 0);
      told = value && !strcmp(LV2_ATOM_BODY_CONST(value), argv[2]);
    } else if (stage == 3 && told && latency > 0 && latency != center_latency) {
      fprintf(stderr, "lv2_rt_host: the model, latency %.0f\n", latency);
      stage = 4;
      block = 20000 - 200; /* 200 more blocks with the model */
    }
    nanosleep(&tick, NULL);
  }
  atomic_store(&stop_worker, 1);
  pthread_join(worker, NULL);
  lilv_instance_deactivate(inst);
  lilv_instance_free(inst);
  lilv_node_free(uri);
  lilv_world_free(world);
  long counted = atomic_load(&allocations);
  printf("lv2_rt_host: stages reached %d of 4, %ld allocations in run() (%ld in activate)\n", stage, counted,
         activate_allocations);
  return stage >= 4 && counted == 0 ? 0 : 1;
}
