/* Vigil's block scanner: one pass over a block of NDJSON lines deciding which lines
 * a batch scan must parse (see vigil/engine/blockscan.py, which holds the same
 * logic in Python and documents it).
 *
 * scan(block, table, needles) -> (starts, ends, numbers, unclean, blank, newlines)
 *   block    bytes of whole lines
 *   table    65,536 bytes: non-zero at every byte pair (in any letter case) some
 *            needle is looked up by, so most positions cost one table read
 *   needles  tuple of (bytes, offset, kind): the lower-cased needle, the offset of
 *            its byte pair, and its kind (0 literal, 1 vendor marker, 2 JSON escape)
 *   starts   start offsets of the lines to parse, in order: unclean lines and lines
 *            holding a literal (lower-cased)
 *   ends     their end offsets (at the newline or the block's end)
 *   numbers  their line numbers within the block, from 0
 *   unclean  start offsets of the lines the literal test could be wrong for: a JSON
 *            escape, a non-ASCII byte, a vendor marker, or not one {...} object
 *   blank    lines holding only whitespace (not counting the empty end after the
 *            last newline)
 *   newlines number of newline bytes
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

enum { LITERAL = 0, MARKER = 1, ESCAPE = 2 };

typedef struct {
    const unsigned char *s;
    Py_ssize_t n;
    Py_ssize_t off;
    int kind;
} needle;

typedef struct {
    Py_ssize_t *v;
    Py_ssize_t n, cap;
} offsets;

static int push(offsets *o, Py_ssize_t x)
{
    if (o->n == o->cap) {
        Py_ssize_t cap = o->cap ? o->cap * 2 : 256;
        Py_ssize_t *v = PyMem_RawRealloc(o->v, (size_t)cap * sizeof *v);
        if (v == NULL)
            return -1;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = x;
    return 0;
}

static PyObject *to_list(const offsets *o)
{
    PyObject *list = PyList_New(o->n);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < o->n; i++) {
        PyObject *x = PyLong_FromSsize_t(o->v[i]);
        if (x == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, x);
    }
    return list;
}

/* Python's bytes.isspace / strip set. */
static inline int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)(c + (((unsigned)(c - 'A') < 26u) << 5));
}

/* raw[0:n) lower-cased equals the lower-cased needle s[0:n). */
static inline int same_lower(const unsigned char *raw, const unsigned char *s, Py_ssize_t n)
{
    for (Py_ssize_t j = 0; j < n; j++)
        if (lower(raw[j]) != s[j])
            return 0;
    return 1;
}

/* What the needles whose pair is (raw[i], raw[i+1]) say of the line: 0 nothing,
 * 1 a literal, 2 unclean. */
static int check(const unsigned char *raw, Py_ssize_t n, Py_ssize_t i, const needle *nd, Py_ssize_t count)
{
    unsigned char c0 = lower(raw[i]), c1 = lower(raw[i + 1]);
    int found = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        const needle *d = &nd[k];
        if (d->s[d->off] != c0 || d->s[d->off + 1] != c1)
            continue;
        if (d->kind == ESCAPE) {
            /* A real escape: the letter follows an odd run of backslashes. */
            if (raw[i + 1] != 'u' && raw[i + 1] != '/')
                continue;
            Py_ssize_t run = 1;
            while (i - run >= 0 && raw[i - run] == '\\')
                run++;
            if (run & 1)
                return 2;
            continue;
        }
        Py_ssize_t at = i - d->off;
        if (at < 0 || at + d->n > n || !same_lower(raw + at, d->s, d->n))
            continue;
        if (d->kind == MARKER)
            return 2;
        found = 1;
    }
    return found;
}

/* 0 nothing, 1 literal, 2 unclean. The table is indexed by raw byte pairs, every
 * case variant of a needle's pair set, so the line is never copied. */
static int classify_table(const unsigned char *raw, Py_ssize_t n, const unsigned char *table, const needle *nd,
                          Py_ssize_t count)
{
    int found = 0;
    unsigned acc = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        acc |= raw[i];
    if (acc & 0x80u)
        return 2;
    for (Py_ssize_t i = 0; i + 1 < n; i++) {
        if (!table[((unsigned)raw[i] << 8) | raw[i + 1]])
            continue;
        int r = check(raw, n, i, nd, count);
        if (r == 2)
            return 2;
        found |= r;
    }
    return found;
}

/* The candidates of one vector step, bit j for position i + j: 0, 1 or 2 as classify. */
static inline int check_mask(const unsigned char *raw, Py_ssize_t n, Py_ssize_t i, unsigned mask,
                             const needle *nd, Py_ssize_t count)
{
    int found = 0;
    for (; mask; mask &= mask - 1) {
        int r = check(raw, n, i + __builtin_ctz(mask), nd, count);
        if (r == 2)
            return 2;
        found |= r;
    }
    return found;
}

/* The positions from i that a vector step could not reach; nonascii: the steps saw such a byte. */
static int finish(const unsigned char *raw, Py_ssize_t n, Py_ssize_t i, int nonascii, int found,
                  const needle *nd, Py_ssize_t count)
{
    unsigned tail = 0;
    for (Py_ssize_t j = i; j < n; j++)
        tail |= raw[j];
    if (nonascii || (tail & 0x80u))
        return 2;
    for (; i + 1 < n; i++) {
        int r = check(raw, n, i, nd, count);
        if (r == 2)
            return 2;
        found |= r;
    }
    return found;
}

#ifdef __SSE2__
#include <emmintrin.h>

/* Up to this many needles, comparing 16 positions at once with each needle's pair
 * beats the table; each needle costs a few instructions per 16 bytes. */
#define SIMD_NEEDLES 16

/* The same answer as classify_table: 16 positions at a time, each compared (letter
 * case folded with 0x20, which may only add candidates) with every needle's pair,
 * and the bytes OR-ed together for the non-ASCII test. */
static int classify_simd(const unsigned char *raw, Py_ssize_t n, const __m128i *first, const __m128i *second,
                         const needle *nd, Py_ssize_t count)
{
    const __m128i fold = _mm_set1_epi8(0x20);
    __m128i acc = _mm_setzero_si128();
    int found = 0;
    Py_ssize_t i = 0;
    for (; i + 17 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(raw + i));
        __m128i y = _mm_loadu_si128((const __m128i *)(raw + i + 1));
        acc = _mm_or_si128(acc, x);
        x = _mm_or_si128(x, fold);
        y = _mm_or_si128(y, fold);
        __m128i hit = _mm_setzero_si128();
        for (Py_ssize_t k = 0; k < count; k++)
            hit = _mm_or_si128(hit, _mm_and_si128(_mm_cmpeq_epi8(x, first[k]), _mm_cmpeq_epi8(y, second[k])));
        int r = check_mask(raw, n, i, (unsigned)_mm_movemask_epi8(hit), nd, count);
        if (r == 2)
            return 2;
        found |= r;
    }
    return finish(raw, n, i, _mm_movemask_epi8(acc) != 0, found, nd, count);
}
#endif

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#include <stdlib.h>

static int have_avx2; /* set at import */

/* classify_simd with 32 positions at a time, for processors that have AVX2. */
__attribute__((target("avx2"))) static int classify_avx2(const unsigned char *raw, Py_ssize_t n,
                                                         const needle *nd, Py_ssize_t count)
{
    __m256i first[SIMD_NEEDLES], second[SIMD_NEEDLES];
    for (Py_ssize_t k = 0; k < count; k++) {
        first[k] = _mm256_set1_epi8((char)(nd[k].s[nd[k].off] | 0x20));
        second[k] = _mm256_set1_epi8((char)(nd[k].s[nd[k].off + 1] | 0x20));
    }
    const __m256i fold = _mm256_set1_epi8(0x20);
    __m256i acc = _mm256_setzero_si256();
    int found = 0;
    Py_ssize_t i = 0;
    for (; i + 33 <= n; i += 32) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(raw + i));
        __m256i y = _mm256_loadu_si256((const __m256i *)(raw + i + 1));
        acc = _mm256_or_si256(acc, x);
        x = _mm256_or_si256(x, fold);
        y = _mm256_or_si256(y, fold);
        __m256i hit = _mm256_setzero_si256();
        for (Py_ssize_t k = 0; k < count; k++)
            hit = _mm256_or_si256(hit, _mm256_and_si256(_mm256_cmpeq_epi8(x, first[k]), _mm256_cmpeq_epi8(y, second[k])));
        int r = check_mask(raw, n, i, (unsigned)_mm256_movemask_epi8(hit), nd, count);
        if (r == 2)
            return 2;
        found |= r;
    }
    return finish(raw, n, i, _mm256_movemask_epi8(acc) != 0, found, nd, count);
}
#endif

static PyObject *scan(PyObject *self, PyObject *args)
{
    Py_buffer block, table;
    PyObject *needles;
    if (!PyArg_ParseTuple(args, "y*y*O!:scan", &block, &table, &PyTuple_Type, &needles))
        return NULL;

    PyObject *result = NULL;
    needle *nd = NULL;
    offsets starts = {0}, ends = {0}, numbers = {0}, unclean = {0};
    Py_ssize_t blank = 0, newlines = 0;
    Py_ssize_t count = PyTuple_GET_SIZE(needles);

    if (table.len != 65536) {
        PyErr_SetString(PyExc_ValueError, "table must hold 65,536 bytes");
        goto done;
    }
    nd = PyMem_Calloc((size_t)count + 1, sizeof *nd);
    if (nd == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *item = PyTuple_GET_ITEM(needles, k);
        PyObject *text;
        Py_ssize_t off;
        int kind;
        if (!PyArg_ParseTuple(item, "O!ni", &PyBytes_Type, &text, &off, &kind))
            goto done;
        nd[k].s = (const unsigned char *)PyBytes_AS_STRING(text);
        nd[k].n = PyBytes_GET_SIZE(text);
        nd[k].off = off;
        nd[k].kind = kind;
        if (off < 0 || off + 2 > nd[k].n) {
            PyErr_SetString(PyExc_ValueError, "a needle's pair must lie inside it");
            goto done;
        }
    }

    const unsigned char *p = block.buf;
    const unsigned char *tab = table.buf;
#ifdef HAVE_AVX2_PATH
    int avx2 = have_avx2;
#endif
#ifdef __SSE2__
    __m128i first[SIMD_NEEDLES], second[SIMD_NEEDLES];
    int simd = count <= SIMD_NEEDLES;
    for (Py_ssize_t k = 0; simd && k < count; k++) {
        first[k] = _mm_set1_epi8((char)(nd[k].s[nd[k].off] | 0x20));
        second[k] = _mm_set1_epi8((char)(nd[k].s[nd[k].off + 1] | 0x20));
    }
#endif
    Py_ssize_t n = block.len;
    int failed = 0;

    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t s = 0, line = 0;
    for (;; line++) {
        const unsigned char *nl = memchr(p + s, '\n', (size_t)(n - s));
        Py_ssize_t e = nl ? nl - p : n;
        if (nl)
            newlines++;
        Py_ssize_t a = s, b = e;
        while (a < b && is_space(p[a]))
            a++;
        while (b > a && is_space(p[b - 1]))
            b--;
        if (a == b) {
            if (s < n)
                blank++;
        } else {
            int kind;
            if (p[a] != '{' || p[b - 1] != '}')
                kind = 2;
#ifdef HAVE_AVX2_PATH
            else if (simd && avx2)
                kind = classify_avx2(p + s, e - s, nd, count);
#endif
#ifdef __SSE2__
            else if (simd)
                kind = classify_simd(p + s, e - s, first, second, nd, count);
#endif
            else
                kind = classify_table(p + s, e - s, tab, nd, count);
            if (kind == 2 && push(&unclean, s) < 0)
                failed = 1;
            if (kind && (push(&starts, s) < 0 || push(&ends, e) < 0 || push(&numbers, line) < 0))
                failed = 1;
            if (failed)
                break;
        }
        if (!nl)
            break;
        s = e + 1;
    }
    Py_END_ALLOW_THREADS

    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    const offsets *found[4] = {&starts, &ends, &numbers, &unclean};
    PyObject *lists[4] = {NULL};
    int made = 0;
    while (made < 4 && (lists[made] = to_list(found[made])) != NULL)
        made++;
    if (made == 4)
        result = Py_BuildValue("NNNNnn", lists[0], lists[1], lists[2], lists[3], blank, newlines);
    else
        while (made > 0)
            Py_DECREF(lists[--made]);

done:
    PyMem_RawFree(starts.v);
    PyMem_RawFree(ends.v);
    PyMem_RawFree(numbers.v);
    PyMem_RawFree(unclean.v);
    PyMem_Free(nd);
    PyBuffer_Release(&block);
    PyBuffer_Release(&table);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "Lines of an NDJSON block to parse: (starts, ends, numbers, unclean, blank, newlines)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_blockscan", "Vigil's block scanner, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__blockscan(void)
{
#ifdef HAVE_AVX2_PATH
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2") && getenv("VIGIL_NO_AVX2") == NULL;
#endif
    return PyModule_Create(&module);
}
