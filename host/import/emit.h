/* Between emit.c (layer names, tensors, axis maps, writing a layer) and
 * lower.c (one function per ONNX op or pattern): internal to host/import. */
#ifndef CNN_IMPORT_EMIT_H
#define CNN_IMPORT_EMIT_H

#include "import/ir.h"

#define NAME_MAX_LEN 100 /* a layer name's bytes (before a uniquing suffix) */

typedef struct emitter {
    cnn_ir *g;
    cnn_ir_out *o;
    char **names;               /* [n_layers] */
    int cap_names;
    int *slots;                 /* hash of layer names */
    size_t mask;
    int *tslots;                /* hash of tensor names */
    size_t tmask;
    int last;                   /* the last layer written */
    bool *bare;                 /* [n_nodes] the node's layer takes its module path as it is */
} emitter;

/* A layer's parameters: n tensors with suffixes ("weight", "bias", ...).
 * Each comes from value src[k] (its name kept when every one is an
 * initializer called "X.<suffix>" with one X) or is new data (src -1). */
typedef struct param {
    const char *suffix;
    int src;                    /* value it comes from unchanged, or -1 */
    int ndim;
    int64_t dims[4];
    const float *data;
    float *owned;               /* new data (freed here) */
} param;

/* Text and numbers as the pipeline reads them back. */
void cnn_em_add_newer(cnn_ir_out *o, const char *what); /* an op or key of the newer op set was written */
void cnn_em_fmt_float(double v, char *buf, size_t size);  /* shortest float32 round trip */
void cnn_em_fmt_hw(int a, int b, char *buf, size_t size); /* "3" or "[3, 1]" */
void cnn_em_fmt_pad(const int *p, char *buf, size_t size); /* [t, b, l, r] shortest */
void cnn_em_fmt_name(const char *s, char *buf, size_t size); /* quoted when YAML would read another type */
bool cnn_em_plain_name(const char *s);                    /* [A-Za-z0-9_.-]+: a name kept as written */

/* The unique name node ni's layer of op `op` gets (emit.c). */
int cnn_em_new_name(emitter *e, int ni, const char *op, char *out, size_t size);
/* Tensors of the weights: can `name` hold this data (free, or the same
 * data already); register it (owned passes here, also on error). */
bool cnn_em_tensor_fits(const emitter *e, const char *name, int ndim, const int64_t *dims, const float *data);
int cnn_em_tensor_add(emitter *e, const char *name, int ndim, const int64_t *dims, const float *data, float *owned);
/* The constant operand c of an elementwise op on computed x, registered as
 * a [C, H, W] tensor that broadcasts against x's layer; its name in *name
 * (the initializer's when its data needs no reordering). */
int cnn_em_const_operand(emitter *e, int ni, int x, int c, const char *layer, char *name, size_t size);

/* Axis maps (ir_val.phys). */
void cnn_em_set_identity(ir_val *v);                       /* axes 1.. are C, H, W */
void cnn_em_phys_dims(const ir_val *v, int64_t pd[3]);     /* the layer's [C, H, W] */
bool cnn_em_is_nchw(const ir_val *v);
bool cnn_em_ordered(const ir_val *v);                      /* memory order is ONNX's row-major order */
bool cnn_em_same_layout(const ir_val *a, const ir_val *b);
const char *cnn_em_axis_name(int p);                       /* "C", "H", "W", "batch" */

/* Writes "  - {name: N, op: OP, in: ..., EXTRA, params: P}  # node" for node
 * ni with inputs ins[] (values); value `out` becomes its output (axes C, H,
 * W unless the caller sets others).  The params' owned data passes here. */
int cnn_em_put_layer(emitter *e, int ni, const char *op, const int *ins, int nin, const char *extra, param *ps,
                     int nps, int out);
void cnn_em_alias(emitter *e, int out, int in);            /* out is in under another shape: no layer */
void cnn_em_alias_layout(emitter *e, int out, int in);     /* out, a layer's output, has in's axes */

/* Checks that name the node when they fail. */
int cnn_em_computed(emitter *e, int ni, int v);            /* v is not a constant */
int cnn_em_need_nchw(emitter *e, int ni, int v);           /* v is [N, C, H, W] as C, H, W */
int cnn_em_need_spatial(emitter *e, int ni, int v);        /* ... or [N, C, L] as C, H */
int cnn_em_need_channel_axis(emitter *e, int ni, int v, int a, const char *what);

/* lower.c: the layers of node ni (its op, or the pattern ending at it). */
int cnn_em_node(emitter *e, int ni);

#endif
