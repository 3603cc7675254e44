/*
 * splitsound as an LV2 plugin: a stereo effect that isolates or removes one
 * stem live, over the C API's real-time separator (include/splitsound.h).
 *
 * Ports: stereo audio in and out; `separator` (0 hpss, 1 center, 2 the model
 * package set by the `model` parameter), `stem` (its index), `mode` (0
 * isolate, 1 remove), `mix` (dry/wet), `latency` (reported to the host), a
 * control atom port taking patch:Set of the model path (and patch:Get), and a
 * notify port that tells the host the path (patch:Set) for its UI.
 *
 * Threads, as LV2 defines them:
 * - run() only calls splitsound_rt_process and does arithmetic on buffers
 *   allocated beforehand: it allocates nothing, takes no lock, never waits;
 * - opening a separator (which allocates, and for a model loads it and starts
 *   its worker thread) happens in activate(), in state restore, or, when the
 *   separator or model changes while running, on the host's worker thread
 *   (worker extension); freeing the old one too. Until a separator is ready
 *   the output is the input, delayed by the latency reported so far;
 * - a separator that cannot be opened (no model path, a file that is not a
 *   package) is logged once with the reason, and the output is the dry input.
 *
 * Isolate outputs the stem; remove outputs the delayed input minus the stem,
 * so isolate + remove is the delayed input. Both have the separator's latency.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lv2/atom/atom.h>
#include <lv2/atom/forge.h>
#include <lv2/atom/util.h>
#include <lv2/core/lv2.h>
#include <lv2/log/log.h>
#include <lv2/log/logger.h>
#include <lv2/patch/patch.h>
#include <lv2/state/state.h>
#include <lv2/urid/urid.h>
#include <lv2/worker/worker.h>

#include "splitsound.h"

#define PLUGIN_URI "https://splitsound.dev/lv2/splitsound"
#define MODEL_URI PLUGIN_URI "#model"

enum { IN_L, IN_R, OUT_L, OUT_R, SEPARATOR, STEM, MODE, MIX, LATENCY, CONTROL, NOTIFY };
enum { BLOCK = 1024, MAX_PATH = 2048, CHANNELS = 2 };
enum { KIND_HPSS, KIND_CENTER, KIND_MODEL, KIND_NONE = -1 };

/* A separator ready for run(): everything run() touches is allocated here. */
typedef struct {
  splitsound_rt *rt;
  size_t stems, out_channels, latency;
  float **outs;        /* stems × out_channels buffers of BLOCK frames, stem-major */
  float *delay[CHANNELS]; /* the dry input's delay line, `latency` frames */
  size_t delay_pos;
} engine;

/* Messages to and from the worker thread (copied by the host). */
typedef struct {
  enum { MSG_LOAD, MSG_FREE, MSG_LOADED } type;
  int kind;
  engine *eng;
  char path[MAX_PATH];
} message;

typedef struct {
  const float *in[CHANNELS];
  float *out[CHANNELS];
  const float *separator, *stem, *mode, *mix;
  float *latency_port;
  const LV2_Atom_Sequence *control;
  LV2_Atom_Sequence *notify;
  LV2_Atom_Forge forge;
  bool tell_path; /* send the model path to the host (after restore, a change, a patch:Get) */

  LV2_URID_Map *map;
  LV2_Worker_Schedule *schedule;
  LV2_Log_Logger logger;
  struct {
    LV2_URID atom_path, atom_urid, atom_object, patch_set, patch_get, patch_property, patch_value, model;
  } uris;

  double rate;
  engine *eng;
  int kind;           /* what `eng` is (KIND_NONE: none, or it failed) */
  bool pending;       /* a load is on the worker */
  bool model_changed; /* a new path arrived; reload a model */
  char model_path[MAX_PATH];
} plugin;

static void engine_free(engine *e) {
  if (!e) {
    return;
  }
  if (e->outs) {
    for (size_t i = 0; i < e->stems * e->out_channels; i++) {
      free(e->outs[i]);
    }
    free(e->outs);
  }
  for (int c = 0; c < CHANNELS; c++) {
    free(e->delay[c]);
  }
  splitsound_rt_free(e->rt);
  free(e);
}

static void log_failure(plugin *p, const char *what, splitsound_status s) {
  char message_[1024] = "";
  splitsound_last_error(message_, sizeof message_, NULL);
  lv2_log_error(&p->logger, "splitsound: %s: %s (%s); the output is the dry input\n", what, message_,
                splitsound_status_name(s));
}

/* Opens and prepares a separator (not real-time: allocates, may load a model). */
static engine *engine_open(plugin *p, int kind, const char *path) {
  const char *spec = kind == KIND_HPSS ? "builtin:hpss" : kind == KIND_CENTER ? "builtin:center" : path;
  if (kind == KIND_MODEL && (!path || !path[0])) {
    lv2_log_error(&p->logger, "splitsound: separator `model` without a model path (set the `model` parameter); "
                              "the output is the dry input\n");
    return NULL;
  }
  engine *e = calloc(1, sizeof *e);
  if (!e) {
    return NULL;
  }
  splitsound_status s;
  if ((s = splitsound_rt_new(spec, NULL, &e->rt)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_prepare(e->rt, (uint32_t)p->rate, BLOCK, CHANNELS)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_stem_count(e->rt, &e->stems)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_output_channels(e->rt, &e->out_channels)) != SPLITSOUND_STATUS_OK ||
      (s = splitsound_rt_latency(e->rt, &e->latency)) != SPLITSOUND_STATUS_OK) {
    log_failure(p, spec, s);
    engine_free(e);
    return NULL;
  }
  if (e->out_channels != CHANNELS || e->stems == 0) {
    lv2_log_error(&p->logger, "splitsound: %s gives %zu stems of %zu channels; a stereo separator is needed\n", spec,
                  e->stems, e->out_channels);
    engine_free(e);
    return NULL;
  }
  e->outs = calloc(e->stems * e->out_channels, sizeof *e->outs);
  bool ok = e->outs != NULL;
  for (size_t i = 0; ok && i < e->stems * e->out_channels; i++) {
    ok = (e->outs[i] = calloc(BLOCK, sizeof(float))) != NULL;
  }
  for (int c = 0; ok && c < CHANNELS; c++) {
    ok = (e->delay[c] = calloc(e->latency + 1, sizeof(float))) != NULL;
  }
  if (!ok) {
    engine_free(e);
    return NULL;
  }
  lv2_log_note(&p->logger, "splitsound: %s ready, %zu stems, latency %zu frames\n", spec, e->stems, e->latency);
  return e;
}

static int wanted_kind(const plugin *p) {
  if (!p->separator) {
    return KIND_HPSS;
  }
  int k = (int)lrintf(*p->separator);
  return k < KIND_HPSS ? KIND_HPSS : k > KIND_MODEL ? KIND_MODEL : k;
}

/* Replaces the engine outside run() (activate, restore): no run() is active. */
static void load_now(plugin *p) {
  int kind = wanted_kind(p);
  engine_free(p->eng);
  p->eng = engine_open(p, kind, p->model_path);
  p->kind = kind;
  p->model_changed = false;
}

static LV2_Handle instantiate(const LV2_Descriptor *d, double rate, const char *bundle,
                              const LV2_Feature *const *features) {
  (void)d;
  (void)bundle;
  plugin *p = calloc(1, sizeof *p);
  if (!p) {
    return NULL;
  }
  LV2_Log_Log *log = NULL;
  for (int i = 0; features && features[i]; i++) {
    if (!strcmp(features[i]->URI, LV2_URID__map)) {
      p->map = features[i]->data;
    } else if (!strcmp(features[i]->URI, LV2_WORKER__schedule)) {
      p->schedule = features[i]->data;
    } else if (!strcmp(features[i]->URI, LV2_LOG__log)) {
      log = features[i]->data;
    }
  }
  lv2_log_logger_init(&p->logger, p->map, log);
  /* Without urid:map (lv2apply) there is no model parameter: no messages, no state. */
  if (p->map) {
    p->uris.atom_path = p->map->map(p->map->handle, LV2_ATOM__Path);
    p->uris.atom_urid = p->map->map(p->map->handle, LV2_ATOM__URID);
    p->uris.atom_object = p->map->map(p->map->handle, LV2_ATOM__Object);
    p->uris.patch_set = p->map->map(p->map->handle, LV2_PATCH__Set);
    p->uris.patch_get = p->map->map(p->map->handle, LV2_PATCH__Get);
    lv2_atom_forge_init(&p->forge, p->map);
    p->uris.patch_property = p->map->map(p->map->handle, LV2_PATCH__property);
    p->uris.patch_value = p->map->map(p->map->handle, LV2_PATCH__value);
    p->uris.model = p->map->map(p->map->handle, MODEL_URI);
  }
  p->rate = rate;
  p->kind = KIND_NONE;
  return p;
}

static void connect_port(LV2_Handle h, uint32_t port, void *data) {
  plugin *p = h;
  switch (port) {
  case IN_L:
  case IN_R:
    p->in[port - IN_L] = data;
    break;
  case OUT_L:
  case OUT_R:
    p->out[port - OUT_L] = data;
    break;
  case SEPARATOR:
    p->separator = data;
    break;
  case STEM:
    p->stem = data;
    break;
  case MODE:
    p->mode = data;
    break;
  case MIX:
    p->mix = data;
    break;
  case LATENCY:
    p->latency_port = data;
    break;
  case CONTROL:
    p->control = data;
    break;
  case NOTIFY:
    p->notify = data;
    break;
  default:
    break;
  }
}

static void activate(LV2_Handle h) {
  plugin *p = h;
  if (!p->eng || p->kind != wanted_kind(p) || p->model_changed) {
    load_now(p);
  } else {
    splitsound_rt_reset(p->eng->rt);
  }
}

/* A patch:Set of the model path: copied (no allocation) and flagged for a reload. */
static void handle_control(plugin *p) {
  if (!p->control || !p->map) {
    return;
  }
  LV2_ATOM_SEQUENCE_FOREACH(p->control, ev) {
    const LV2_Atom_Object *obj = (const LV2_Atom_Object *)&ev->body;
    if (ev->body.type == p->uris.atom_object && obj->body.otype == p->uris.patch_get) {
      p->tell_path = true;
      continue;
    }
    if (ev->body.type != p->uris.atom_object || obj->body.otype != p->uris.patch_set) {
      continue;
    }
    const LV2_Atom *property = NULL, *value = NULL;
    lv2_atom_object_get(obj, p->uris.patch_property, &property, p->uris.patch_value, &value, 0);
    if (!property || property->type != p->uris.atom_urid || ((const LV2_Atom_URID *)property)->body != p->uris.model ||
        !value || value->type != p->uris.atom_path || value->size == 0 || value->size >= MAX_PATH) {
      continue;
    }
    memcpy(p->model_path, LV2_ATOM_BODY_CONST(value), value->size);
    p->model_path[value->size - 1] = '\0';
    p->model_changed = true;
    p->tell_path = true;
  }
}

/* The notify port: a patch:Set of the model path when the host should learn it. */
static void notify_host(plugin *p) {
  if (!p->notify || !p->map) {
    return;
  }
  uint32_t capacity = p->notify->atom.size;
  lv2_atom_forge_set_buffer(&p->forge, (uint8_t *)p->notify, capacity);
  LV2_Atom_Forge_Frame seq;
  lv2_atom_forge_sequence_head(&p->forge, &seq, 0);
  if (p->tell_path && p->model_path[0]) {
    LV2_Atom_Forge_Frame obj;
    lv2_atom_forge_frame_time(&p->forge, 0);
    lv2_atom_forge_object(&p->forge, &obj, 0, p->uris.patch_set);
    lv2_atom_forge_key(&p->forge, p->uris.patch_property);
    lv2_atom_forge_urid(&p->forge, p->uris.model);
    lv2_atom_forge_key(&p->forge, p->uris.patch_value);
    lv2_atom_forge_path(&p->forge, p->model_path, (uint32_t)strlen(p->model_path) + 1);
    lv2_atom_forge_pop(&p->forge, &obj);
  }
  p->tell_path = false;
  lv2_atom_forge_pop(&p->forge, &seq);
}

static void run(LV2_Handle h, uint32_t frames) {
  plugin *p = h;
  handle_control(p);
  notify_host(p);
  int want = wanted_kind(p);
  if (p->schedule && !p->pending && (want != p->kind || (want == KIND_MODEL && p->model_changed))) {
    message m;
    memset(&m, 0, sizeof m);
    m.type = MSG_LOAD;
    m.kind = want;
    memcpy(m.path, p->model_path, sizeof m.path);
    if (p->schedule->schedule_work(p->schedule->handle, sizeof m, &m) == LV2_WORKER_SUCCESS) {
      p->pending = true;
      p->model_changed = false;
    }
  }
  engine *e = p->eng;
  if (p->latency_port) {
    *p->latency_port = e ? (float)e->latency : 0.0f;
  }
  float mix = p->mix ? *p->mix : 1.0f;
  mix = mix < 0.0f ? 0.0f : mix > 1.0f ? 1.0f : mix;
  bool remove = p->mode && lrintf(*p->mode) == 1;
  if (!e) {
    for (int c = 0; c < CHANNELS; c++) {
      if (p->out[c] != p->in[c]) {
        memmove(p->out[c], p->in[c], frames * sizeof(float));
      }
    }
    return;
  }
  size_t stem = p->stem && *p->stem > 0.0f ? (size_t)lrintf(*p->stem) : 0;
  if (stem >= e->stems) {
    stem = e->stems - 1;
  }
  for (uint32_t off = 0; off < frames;) {
    size_t n = frames - off < BLOCK ? frames - off : BLOCK;
    const float *in[CHANNELS] = {p->in[0] + off, p->in[1] + off};
    splitsound_status s = splitsound_rt_process(e->rt, in, CHANNELS, e->outs, e->stems * e->out_channels, n);
    for (int c = 0; c < CHANNELS; c++) {
      const float *wet = e->outs[stem * e->out_channels + (size_t)c];
      float *delay = e->delay[c];
      size_t pos = e->delay_pos;
      for (size_t i = 0; i < n; i++) {
        float x = in[c][i], dry = x;
        if (e->latency > 0) {
          dry = delay[pos];
          delay[pos] = x;
          pos = pos + 1 == e->latency ? 0 : pos + 1;
        }
        float y = s != SPLITSOUND_STATUS_OK ? dry : remove ? dry - wet[i] : wet[i];
        p->out[c][off + i] = mix >= 1.0f ? y : mix <= 0.0f ? dry : dry + mix * (y - dry);
      }
      if (c == CHANNELS - 1) {
        e->delay_pos = pos;
      }
    }
    off += (uint32_t)n;
  }
}

static LV2_Worker_Status work(LV2_Handle h, LV2_Worker_Respond_Function respond, LV2_Worker_Respond_Handle rh,
                              uint32_t size, const void *data) {
  plugin *p = h;
  if (size != sizeof(message)) {
    return LV2_WORKER_ERR_UNKNOWN;
  }
  const message *m = data;
  if (m->type == MSG_FREE) {
    engine_free(m->eng);
    return LV2_WORKER_SUCCESS;
  }
  message r;
  memset(&r, 0, sizeof r);
  r.type = MSG_LOADED;
  r.kind = m->kind;
  r.eng = engine_open(p, m->kind, m->path);
  return respond(rh, sizeof r, &r);
}

static LV2_Worker_Status work_response(LV2_Handle h, uint32_t size, const void *data) {
  plugin *p = h;
  if (size != sizeof(message)) {
    return LV2_WORKER_ERR_UNKNOWN;
  }
  const message *m = data;
  engine *old = p->eng;
  p->eng = m->eng;
  p->kind = m->kind;
  p->pending = false;
  if (old) {
    message f;
    memset(&f, 0, sizeof f);
    f.type = MSG_FREE;
    f.eng = old;
    if (p->schedule->schedule_work(p->schedule->handle, sizeof f, &f) != LV2_WORKER_SUCCESS) {
      /* The worker's queue is full: keep the old separator rather than free it here. */
      p->eng = old;
      engine_free(m->eng);
      p->kind = KIND_NONE;
    }
  }
  return LV2_WORKER_SUCCESS;
}

static LV2_State_Status save(LV2_Handle h, LV2_State_Store_Function store, LV2_State_Handle sh, uint32_t flags,
                             const LV2_Feature *const *features) {
  (void)flags;
  plugin *p = h;
  if (!p->model_path[0] || !p->map) {
    return LV2_STATE_SUCCESS;
  }
  LV2_State_Map_Path *map_path = NULL;
  for (int i = 0; features && features[i]; i++) {
    if (!strcmp(features[i]->URI, LV2_STATE__mapPath)) {
      map_path = features[i]->data;
    }
  }
  char *abstract = map_path ? map_path->abstract_path(map_path->handle, p->model_path) : NULL;
  const char *path = abstract ? abstract : p->model_path;
  LV2_State_Status s = store(sh, p->uris.model, path, strlen(path) + 1, p->uris.atom_path,
                             LV2_STATE_IS_POD | LV2_STATE_IS_PORTABLE);
  free(abstract);
  return s;
}

static LV2_State_Status restore(LV2_Handle h, LV2_State_Retrieve_Function retrieve, LV2_State_Handle sh,
                                uint32_t flags, const LV2_Feature *const *features) {
  (void)flags;
  plugin *p = h;
  if (!p->map) {
    return LV2_STATE_ERR_NO_FEATURE;
  }
  size_t size = 0;
  uint32_t type = 0, vflags = 0;
  const char *value = retrieve(sh, p->uris.model, &size, &type, &vflags);
  if (!value) {
    return LV2_STATE_SUCCESS;
  }
  if (type != p->uris.atom_path || size == 0 || value[size - 1] != '\0') {
    lv2_log_error(&p->logger, "splitsound: the saved model path is not a path; ignored\n");
    return LV2_STATE_ERR_BAD_TYPE;
  }
  LV2_State_Map_Path *map_path = NULL;
  for (int i = 0; features && features[i]; i++) {
    if (!strcmp(features[i]->URI, LV2_STATE__mapPath)) {
      map_path = features[i]->data;
    }
  }
  char *absolute = map_path ? map_path->absolute_path(map_path->handle, value) : NULL;
  const char *path = absolute ? absolute : value;
  if (strlen(path) >= MAX_PATH) {
    lv2_log_error(&p->logger, "splitsound: the saved model path is longer than %d bytes; ignored\n", MAX_PATH - 1);
    free(absolute);
    return LV2_STATE_ERR_UNKNOWN;
  }
  strcpy(p->model_path, path);
  free(absolute);
  p->tell_path = true;
  /* Restore is not concurrent with run(): open the model now if it is the separator. */
  p->model_changed = true;
  if (wanted_kind(p) == KIND_MODEL) {
    load_now(p);
  }
  return LV2_STATE_SUCCESS;
}

static const void *extension_data(const char *uri) {
  static const LV2_Worker_Interface worker = {work, work_response, NULL};
  static const LV2_State_Interface state = {save, restore};
  if (!strcmp(uri, LV2_WORKER__interface)) {
    return &worker;
  }
  if (!strcmp(uri, LV2_STATE__interface)) {
    return &state;
  }
  return NULL;
}

static void cleanup(LV2_Handle h) {
  plugin *p = h;
  engine_free(p->eng);
  free(p);
}

static const LV2_Descriptor descriptor = {PLUGIN_URI, instantiate, connect_port, activate, run, NULL, cleanup,
                                          extension_data};

LV2_SYMBOL_EXPORT const LV2_Descriptor *lv2_descriptor(uint32_t index) {
  return index == 0 ? &descriptor : NULL;
}
