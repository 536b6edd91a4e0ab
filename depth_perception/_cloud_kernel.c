/* One-pass writer of an organized PointCloud2 payload (depth_perception.pointcloud).
 *
 * OrganizedCloudBuilder.build() fills the interleaved points with several strided numpy/cv2
 * passes over the 5-6 MB payload; this kernel writes every point once: x, y, z (float32), the
 * packed rgb word, the uint32 label and zeroed padding. It uses only the buffer protocol (no
 * numpy headers) and releases the GIL for the loop, so the node's other threads (publishing,
 * ONNX Runtime) run meanwhile.
 *
 * The output must be byte-identical to the numpy path, NaN bits included, so the arithmetic is
 * the same: x = z * rx[j] and y = z * ry[i] in float32, z as the numpy path computes it:
 *
 *   float32, validated   z = d (bits copied; x and y are then NaN * r: d's NaN, quieted)
 *   float32              z = d where 0 < d < inf, else invalid_nan (the numpy path selects
 *                        np.float32(np.nan) on the bits, whatever NaN the pixel held)
 *   float64              the same test in float64, then z = (float)d; invalid: as float32
 *   uint16 millimetres   z = (float)d * (float)1e-3; 0 -> mm_nan (np.float32(np.nan))
 *
 * The two NaN patterns come from Python (measured with numpy on this host), and words are
 * stored in native byte order, as numpy's views write them: the rgb word is the native uint32
 * 0x00RRGGBB, so its bytes are B, G, R, 0 on a little-endian host and 0, R, G, B on a big one.
 * pointcloud.py checks the kernel against the numpy path on a probe at import and falls back
 * to numpy on any difference.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define CLOUD_SSE2 1
#else
#define CLOUD_SSE2 0
#endif

enum { DEPTH_F32_VALIDATED = 0, DEPTH_F32 = 1, DEPTH_F64 = 2, DEPTH_U16 = 3 };

typedef struct {
    char *out;
    Py_ssize_t height, width;
    const char *depth;
    Py_ssize_t d_row, d_col; /* byte steps between output rows / columns (stride included) */
    const char *rgb;
    Py_ssize_t c_row, c_col, c_r, c_g, c_b; /* c_r/c_g/c_b: byte offsets of the channels */
    const char *labels;
    Py_ssize_t l_row, l_col;
    const float *rx, *ry;
    int kind, dense; /* dense: stride 1 and rows of contiguous elements (see fill_dense) */
    uint32_t invalid_nan, mm_nan;
    float mm_scale;
} Job;

static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The z bits of one pixel (see the table above). */
static inline uint32_t depth_bits(const Job *job, const char *p, int kind) {
    if (kind == DEPTH_F32_VALIDATED) {
        uint32_t b;
        memcpy(&b, p, 4);
        return b;
    }
    if (kind == DEPTH_F32) {
        float d;
        memcpy(&d, p, 4);
        return d > 0.0f && d < INFINITY ? f2u(d) : job->invalid_nan;
    }
    if (kind == DEPTH_F64) {
        double d;
        memcpy(&d, p, 8);
        return d > 0.0 && d < (double)INFINITY ? f2u((float)d) : job->invalid_nan;
    }
    {
        uint16_t d;
        memcpy(&d, p, 2);
        if (d == 0) return job->mm_nan;
        return f2u((float)d * job->mm_scale);
    }
}

static inline void store(char *at, uint32_t word) { memcpy(at, &word, 4); }

/* The loop, inlined once per depth kind and layout (constant arguments): no branch on either
 * per point, constant-offset stores. Everything it reads is copied to locals first, as the
 * stores through `o` could otherwise alias the job and force reloads. */
static inline void fill_rows(const Job *job, const int kind, const int has_rgb,
                             const int has_label) {
    const Py_ssize_t step = has_rgb && has_label ? 20 : 16;
    const Py_ssize_t height = job->height, width = job->width;
    const Py_ssize_t d_row = job->d_row, d_col = job->d_col;
    const Py_ssize_t c_row = job->c_row, c_col = job->c_col;
    const Py_ssize_t c_r = job->c_r, c_g = job->c_g, c_b = job->c_b;
    const Py_ssize_t l_row = job->l_row, l_col = job->l_col;
    const float *const rx = job->rx, *const ry = job->ry;
    const char *const depth = job->depth;
    const unsigned char *const rgb = (const unsigned char *)job->rgb;
    const unsigned char *const labels = (const unsigned char *)job->labels;
    char *const out = job->out;
    const Job local = *job; /* for depth_bits: NaN patterns and the millimetre scale */
    for (Py_ssize_t i = 0; i < height; i++) {
        char *o = out + i * width * step;
        const char *dp = depth + i * d_row;
        const unsigned char *cp = has_rgb ? rgb + i * c_row : NULL;
        const unsigned char *lp = has_label ? labels + i * l_row : NULL;
        const float ry_i = ry[i];
        for (Py_ssize_t j = 0; j < width; j++) {
            const uint32_t zb = depth_bits(&local, dp + j * d_col, kind);
            const float z = u2f(zb);
            store(o, f2u(z * rx[j]));
            store(o + 4, f2u(z * ry_i));
            store(o + 8, zb);
            if (has_rgb) {
                const unsigned char *px = cp + j * c_col;
                store(o + 12, (uint32_t)px[c_r] << 16 | (uint32_t)px[c_g] << 8 | px[c_b]);
            }
            if (has_label) store(o + (has_rgb ? 16 : 12), lp[j * l_col]);
            if (!has_rgb && !has_label) store(o + 12, 0); /* PCL PointXYZ padding */
            o += step;
        }
    }
}

/* The packed 0x00RRGGBB word of the pixel at px. With `wide` (little-endian, GCC/clang) it
 * reads 4 bytes, so the caller must know a byte follows the pixel; else 3 byte loads. */
static inline uint32_t rgb_word(const unsigned char *px, const int bgr, const int wide) {
#if PY_LITTLE_ENDIAN && defined(__GNUC__)
    if (wide) {
        uint32_t v; /* bytes c0 c1 c2 next -> next<<24 | c2<<16 | c1<<8 | c0 */
        memcpy(&v, px, 4);
        return bgr ? v & 0x00ffffffu : __builtin_bswap32(v) >> 8;
    }
#else
    (void)wide;
#endif
    return (uint32_t)px[bgr ? 2 : 0] << 16 | (uint32_t)px[1] << 8 | px[bgr ? 0 : 2];
}

/* The z bits of the dense row's pixel j (the scalar rule of depth_bits, typed loads). */
static inline uint32_t dense_z(const char *row, Py_ssize_t j, const int kind,
                               const uint32_t invalid_nan, const uint32_t mm_nan,
                               const float mm_scale) {
    if (kind == DEPTH_F32_VALIDATED) {
        uint32_t b;
        memcpy(&b, row + 4 * j, 4);
        return b;
    }
    if (kind == DEPTH_F32) {
        float d;
        memcpy(&d, row + 4 * j, 4);
        return d > 0.0f && d < INFINITY ? f2u(d) : invalid_nan;
    }
    if (kind == DEPTH_F64) {
        double d;
        memcpy(&d, row + 8 * j, 8);
        return d > 0.0 && d < (double)INFINITY ? f2u((float)d) : invalid_nan;
    }
    uint16_t d;
    memcpy(&d, row + 2 * j, 2);
    return d == 0 ? mm_nan : f2u((float)d * mm_scale);
}

#if CLOUD_SSE2
/* z of the dense row's pixels j..j+3, with the same rules (and so the same bits) as dense_z:
 * the comparisons and the float32 multiply/conversion are the scalar ones, lane by lane. */
static inline __m128 dense_z4(const char *row, Py_ssize_t j, const int kind,
                              const __m128i invalid_nan, const __m128i mm_nan,
                              const __m128 mm_scale) {
    if (kind == DEPTH_F32_VALIDATED) return _mm_loadu_ps((const float *)(const void *)row + j);
    if (kind == DEPTH_F32) {
        const __m128 d = _mm_loadu_ps((const float *)(const void *)row + j);
        const __m128 valid = _mm_and_ps(_mm_cmpgt_ps(d, _mm_setzero_ps()),
                                        _mm_cmplt_ps(d, _mm_set1_ps(INFINITY)));
        return _mm_or_ps(_mm_and_ps(valid, d),
                         _mm_andnot_ps(valid, _mm_castsi128_ps(invalid_nan)));
    }
    if (kind == DEPTH_F64) {
        const double *p = (const double *)(const void *)row + j;
        const __m128d lo = _mm_loadu_pd(p), hi = _mm_loadu_pd(p + 2);
        const __m128d zero = _mm_setzero_pd(), inf = _mm_set1_pd((double)INFINITY);
        const __m128d v_lo = _mm_and_pd(_mm_cmpgt_pd(lo, zero), _mm_cmplt_pd(lo, inf));
        const __m128d v_hi = _mm_and_pd(_mm_cmpgt_pd(hi, zero), _mm_cmplt_pd(hi, inf));
        /* 64-bit lane masks -> 32-bit ones (each 64-bit mask is all ones or all zeros). */
        const __m128 valid = _mm_shuffle_ps(_mm_castpd_ps(v_lo), _mm_castpd_ps(v_hi),
                                            _MM_SHUFFLE(2, 0, 2, 0));
        const __m128 d = _mm_movelh_ps(_mm_cvtpd_ps(lo), _mm_cvtpd_ps(hi));
        return _mm_or_ps(_mm_and_ps(valid, d),
                         _mm_andnot_ps(valid, _mm_castsi128_ps(invalid_nan)));
    }
    const __m128i d16 = _mm_loadl_epi64((const __m128i *)(const void *)(row + 2 * j));
    const __m128i d32 = _mm_unpacklo_epi16(d16, _mm_setzero_si128());
    const __m128 z = _mm_mul_ps(_mm_cvtepi32_ps(d32), mm_scale);
    const __m128 zero_mm = _mm_castsi128_ps(_mm_cmpeq_epi32(d32, _mm_setzero_si128()));
    return _mm_or_ps(_mm_andnot_ps(zero_mm, z), _mm_and_ps(zero_mm, _mm_castsi128_ps(mm_nan)));
}
#endif

/* The loop for the usual case (stride 1, rows of contiguous elements): constant element steps,
 * word-indexed stores and, with SSE2, 4 points at a time (x, y, z and the fourth word are
 * computed as vectors and transposed into 4 points). `bgr` selects the channel order. */
static inline void fill_dense(const Job *job, const int kind, const int has_rgb,
                              const int has_label, const int bgr) {
    const Py_ssize_t words = has_rgb && has_label ? 5 : 4;
    const Py_ssize_t height = job->height, width = job->width;
    const float *const rx = job->rx, *const ry = job->ry;
    const uint32_t invalid_nan = job->invalid_nan, mm_nan = job->mm_nan;
    const float mm_scale = job->mm_scale;
#if CLOUD_SSE2
    const __m128i invalid_nan4 = _mm_set1_epi32((int)invalid_nan);
    const __m128i mm_nan4 = _mm_set1_epi32((int)mm_nan);
    const __m128 mm_scale4 = _mm_set1_ps(mm_scale);
#endif
    for (Py_ssize_t i = 0; i < height; i++) {
        uint32_t *o = (uint32_t *)(void *)job->out + i * width * words;
        const char *row = job->depth + i * job->d_row;
        const unsigned char *cp = has_rgb ? (const unsigned char *)job->rgb + i * job->c_row : 0;
        const unsigned char *lp = has_label ? (const unsigned char *)job->labels + i * job->l_row
                                            : 0;
        const float ry_i = ry[i];
        Py_ssize_t j = 0;
#if CLOUD_SSE2
        const __m128 ry4 = _mm_set1_ps(ry_i);
        /* j + 4 < width: the last pixel's 4-byte rgb read stays inside the row. */
        for (; j + 4 < width; j += 4) {
            const __m128 z = dense_z4(row, j, kind, invalid_nan4, mm_nan4, mm_scale4);
            __m128 x = _mm_mul_ps(z, _mm_loadu_ps(rx + j));
            __m128 y = _mm_mul_ps(z, ry4);
            __m128 zz = z;
            __m128 w;
            if (has_rgb) {
                const unsigned char *px = cp + 3 * j;
                w = _mm_castsi128_ps(_mm_set_epi32(
                    (int)rgb_word(px + 9, bgr, 1), (int)rgb_word(px + 6, bgr, 1),
                    (int)rgb_word(px + 3, bgr, 1), (int)rgb_word(px, bgr, 1)));
            } else if (has_label) {
                uint32_t four;
                memcpy(&four, lp + j, 4);
                const __m128i b = _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)four),
                                                    _mm_setzero_si128());
                w = _mm_castsi128_ps(_mm_unpacklo_epi16(b, _mm_setzero_si128()));
            } else {
                w = _mm_setzero_ps();
            }
            _MM_TRANSPOSE4_PS(x, y, zz, w); /* now point j, j+1, j+2, j+3 */
            uint32_t *p = o + words * j;
            _mm_storeu_ps((float *)(void *)p, x);
            _mm_storeu_ps((float *)(void *)(p + words), y);
            _mm_storeu_ps((float *)(void *)(p + 2 * words), zz);
            _mm_storeu_ps((float *)(void *)(p + 3 * words), w);
            if (words == 5) {
                p[4] = lp[j];
                p[9] = lp[j + 1];
                p[14] = lp[j + 2];
                p[19] = lp[j + 3];
            }
        }
#endif
        for (; j < width; j++) {
            const uint32_t zb = dense_z(row, j, kind, invalid_nan, mm_nan, mm_scale);
            const float z = u2f(zb);
            uint32_t *p = o + words * j;
            p[0] = f2u(z * rx[j]);
            p[1] = f2u(z * ry_i);
            p[2] = zb;
            if (has_rgb) p[3] = rgb_word(cp + 3 * j, bgr, j + 1 < width);
            if (has_label) p[has_rgb ? 4 : 3] = lp[j];
            if (!has_rgb && !has_label) p[3] = 0;
        }
    }
}

#define FILL_LAYOUTS(fill, ...)                                                           \
    do {                                                                                  \
        if (job->rgb && job->labels) fill(job, __VA_ARGS__, 1, 1);                        \
        else if (job->rgb) fill(job, __VA_ARGS__, 1, 0);                                  \
        else if (job->labels) fill(job, __VA_ARGS__, 0, 1);                               \
        else fill(job, __VA_ARGS__, 0, 0);                                                \
    } while (0)

/* fill_dense's argument order puts the layout last, like fill_rows'. */
#define DENSE_RGB(job, kind, has_rgb, has_label) fill_dense(job, kind, has_rgb, has_label, 0)
#define DENSE_BGR(job, kind, has_rgb, has_label) fill_dense(job, kind, has_rgb, has_label, 1)

#define FILL_KIND(kind)                                                                   \
    do {                                                                                  \
        if (!job->dense) FILL_LAYOUTS(fill_rows, kind);                                   \
        else if (job->c_r == 0) FILL_LAYOUTS(DENSE_RGB, kind);                            \
        else FILL_LAYOUTS(DENSE_BGR, kind);                                               \
    } while (0)

/* One inlined copy of a loop per depth kind, layout (and channel order when dense). */
static void run_job(const Job *job) {
    switch (job->kind) {
    case DEPTH_F32_VALIDATED: FILL_KIND(DEPTH_F32_VALIDATED); break;
    case DEPTH_F32: FILL_KIND(DEPTH_F32); break;
    case DEPTH_F64: FILL_KIND(DEPTH_F64); break;
    default: FILL_KIND(DEPTH_U16); break;
    }
}

/* The element type of a buffer: its format's code when native ("f", "@f", "=f"), else 0. */
static char native_code(const Py_buffer *view) {
    const char *f = view->format ? view->format : "B";
    if (f[0] == '@' || f[0] == '=') f++;
#if PY_LITTLE_ENDIAN
    if (f[0] == '<') f++;
#else
    if (f[0] == '>' || f[0] == '!') f++;
#endif
    if (f[0] == '\0' || f[1] != '\0') return 0;
    return f[0];
}

static int get_view(PyObject *obj, Py_buffer *view, const char *name, int ndim, char code,
                    Py_ssize_t itemsize) {
    if (PyObject_GetBuffer(obj, view, PyBUF_RECORDS_RO) < 0) return -1;
    if (view->ndim != ndim || native_code(view) != code || view->itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected a %d-D buffer of native '%c' items", name,
                     ndim, code);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(fill_doc,
             "fill(out, depth, rgb, labels, rx, ry, stride, point_step, rgb_offset, "
             "label_offset, validated, bgr, invalid_nan, mm_nan)\n--\n\n"
             "Write the organized cloud of the full-resolution ``depth`` (float32/float64 "
             "metres or uint16 millimetres, 2-D, any strides) into the writable C-contiguous "
             "buffer ``out`` (ceil(H/stride) * ceil(W/stride) * point_step bytes). ``rgb`` "
             "(H, W, 3) uint8 and ``labels`` (H, W) uint8 are None when the layout has no such "
             "field (offset -1). ``rx``/``ry``: float32 ray factors of the output columns and "
             "rows. ``invalid_nan``/``mm_nan``: uint32 bits of the NaN of an invalid float "
             "pixel and of 0 mm. Releases the GIL while it writes.");

static PyObject *fill(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *out_o, *depth_o, *rgb_o, *labels_o, *rx_o, *ry_o;
    Py_ssize_t stride, point_step, rgb_offset, label_offset;
    int validated, bgr;
    unsigned long invalid_nan, mm_nan;
    if (!PyArg_ParseTuple(args, "OOOOOOnnnnppkk:fill", &out_o, &depth_o, &rgb_o, &labels_o,
                          &rx_o, &ry_o, &stride, &point_step, &rgb_offset, &label_offset,
                          &validated, &bgr, &invalid_nan, &mm_nan))
        return NULL;
    if (stride < 1) return PyErr_Format(PyExc_ValueError, "stride must be >= 1");
    if ((rgb_o == Py_None) != (rgb_offset < 0) || (labels_o == Py_None) != (label_offset < 0))
        return PyErr_Format(PyExc_ValueError, "rgb/labels and their offsets disagree");
    /* The layouts of pointcloud._cloud_layout, and only those. */
    if (point_step != (rgb_offset >= 0 && label_offset >= 0 ? 20 : 16) ||
        (rgb_offset >= 0 && rgb_offset != 12) ||
        (label_offset >= 0 && label_offset != (rgb_offset >= 0 ? 16 : 12)))
        return PyErr_Format(PyExc_ValueError,
                            "unsupported layout: point_step %zd, rgb at %zd, label at %zd",
                            point_step, rgb_offset, label_offset);

    Py_buffer out = {0}, depth = {0}, rgb = {0}, labels = {0}, rx = {0}, ry = {0};
    PyObject *result = NULL;
    Job job;
    memset(&job, 0, sizeof job);

    if (PyObject_GetBuffer(out_o, &out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) goto done;
    if (PyObject_GetBuffer(depth_o, &depth, PyBUF_RECORDS_RO) < 0) goto done;
    {
        const char code = native_code(&depth);
        if (depth.ndim != 2 || !((code == 'f' && depth.itemsize == 4) ||
                                 (code == 'd' && depth.itemsize == 8) ||
                                 (code == 'H' && depth.itemsize == 2))) {
            PyErr_SetString(PyExc_TypeError,
                            "depth: expected a 2-D buffer of native float32, float64 or uint16");
            goto done;
        }
        job.kind = code == 'H' ? DEPTH_U16 : code == 'd' ? DEPTH_F64 : DEPTH_F32;
        if (validated) {
            if (job.kind != DEPTH_F32) {
                PyErr_SetString(PyExc_ValueError, "validated depth must be float32");
                goto done;
            }
            job.kind = DEPTH_F32_VALIDATED;
        }
    }
    const Py_ssize_t full_h = depth.shape[0], full_w = depth.shape[1];
    job.height = (full_h + stride - 1) / stride;
    job.width = (full_w + stride - 1) / stride;
    if (get_view(rx_o, &rx, "rx", 1, 'f', 4) < 0 || get_view(ry_o, &ry, "ry", 1, 'f', 4) < 0)
        goto done;
    if (rx.shape[0] != job.width || ry.shape[0] != job.height ||
        !PyBuffer_IsContiguous(&rx, 'C') || !PyBuffer_IsContiguous(&ry, 'C')) {
        PyErr_SetString(PyExc_ValueError,
                        "rx/ry must be contiguous float32 of the output width/height");
        goto done;
    }
    if (out.len != job.height * job.width * point_step) {
        PyErr_Format(PyExc_ValueError, "out holds %zd bytes, the cloud needs %zd", out.len,
                     job.height * job.width * point_step);
        goto done;
    }
    if (rgb_o != Py_None) {
        if (get_view(rgb_o, &rgb, "rgb", 3, 'B', 1) < 0) goto done;
        if (rgb.shape[0] != full_h || rgb.shape[1] != full_w || rgb.shape[2] != 3) {
            PyErr_SetString(PyExc_ValueError, "rgb must be (H, W, 3) like the depth");
            goto done;
        }
        job.rgb = rgb.buf;
        job.c_row = rgb.strides[0] * stride;
        job.c_col = rgb.strides[1] * stride;
        job.c_r = rgb.strides[2] * (bgr ? 2 : 0);
        job.c_g = rgb.strides[2];
        job.c_b = rgb.strides[2] * (bgr ? 0 : 2);
    }
    if (labels_o != Py_None) {
        if (get_view(labels_o, &labels, "labels", 2, 'B', 1) < 0) goto done;
        if (labels.shape[0] != full_h || labels.shape[1] != full_w) {
            PyErr_SetString(PyExc_ValueError, "labels must be (H, W) like the depth");
            goto done;
        }
        job.labels = labels.buf;
        job.l_row = labels.strides[0] * stride;
        job.l_col = labels.strides[1] * stride;
    }
    job.out = out.buf;
    job.depth = depth.buf;
    job.d_row = depth.strides[0] * stride;
    job.d_col = depth.strides[1] * stride;
    job.rx = rx.buf;
    job.ry = ry.buf;
    {
        const Py_ssize_t item = depth.itemsize;
        job.dense = job.d_col == item && (!job.rgb || (job.c_col == 3 && job.c_g == 1)) &&
                    (!job.labels || job.l_col == 1) && ((uintptr_t)out.buf % 4) == 0;
    }
    job.invalid_nan = (uint32_t)invalid_nan;
    job.mm_nan = (uint32_t)mm_nan;
    job.mm_scale = (float)1e-3; /* np.float32(1e-3): the double 0.001 rounded to float */

    Py_BEGIN_ALLOW_THREADS
    run_job(&job);
    Py_END_ALLOW_THREADS

    result = Py_NewRef(Py_None);
done:
    if (out.obj) PyBuffer_Release(&out);
    if (depth.obj) PyBuffer_Release(&depth);
    if (rgb.obj) PyBuffer_Release(&rgb);
    if (labels.obj) PyBuffer_Release(&labels);
    if (rx.obj) PyBuffer_Release(&rx);
    if (ry.obj) PyBuffer_Release(&ry);
    return result;
}

static PyMethodDef methods[] = {
    {"fill", fill, METH_VARARGS, fill_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_cloud_kernel",
    .m_doc = "One-pass PointCloud2 payload writer (see depth_perception.pointcloud).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__cloud_kernel(void) { return PyModule_Create(&module); }
