/* The walk of vigil.engine.batches.Reader.batch in C: each document once, only down the
 * keys some rule reads, into per-field lists of string values, their rows, and the
 * (row, value) pairs of values that are not strings. Reader.walk_python is the same walk
 * in Python; a test holds the two to the same answer.
 *
 * The trie is a dict: segment -> [children dict, field number or -1]. A dotted key
 * ("file.path") is looked up segment by segment, as nested objects are. Arrays of
 * values give several values of one row; arrays of objects are walked; None is no value.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct {
    PyObject *values; /* list per field of str */
    PyObject *rows;   /* list per field of int */
    PyObject *odd;    /* list per field of (row, value) */
    PyObject *row;    /* the current row, as an int object */
} Out;

static int walk_dict(PyObject *obj, PyObject *children, Out *out);

/* The trie node of a dotted key, or NULL (no error set) when a segment is absent. */
static PyObject *lookup_dotted(PyObject *key, PyObject *children)
{
    static PyObject *dot = NULL;
    if (dot == NULL) {
        dot = PyUnicode_FromString(".");
        if (dot == NULL)
            return NULL;
    }
    PyObject *parts = PyUnicode_Split(key, dot, -1);
    if (parts == NULL)
        return NULL;
    PyObject *node = NULL;
    Py_ssize_t n = PyList_GET_SIZE(parts);
    for (Py_ssize_t i = 0; i < n; i++) {
        node = PyDict_GetItemWithError(children, PyList_GET_ITEM(parts, i));
        if (node == NULL)
            break;
        children = PyList_GET_ITEM(node, 0);
    }
    Py_DECREF(parts);
    return node; /* borrowed from the trie, which outlives the call */
}

static int append(PyObject *lists, Py_ssize_t fid, PyObject *item)
{
    return PyList_Append(PyList_GET_ITEM(lists, fid), item);
}

static int walk_value(PyObject *v, PyObject *node, Out *out)
{
    PyObject *sub = PyList_GET_ITEM(node, 0);
    Py_ssize_t fid = PyLong_AsSsize_t(PyList_GET_ITEM(node, 1));
    if (fid == -1 && PyErr_Occurred())
        return -1;
    if (PyUnicode_CheckExact(v)) {
        if (fid >= 0 && (append(out->values, fid, v) < 0 || append(out->rows, fid, out->row) < 0))
            return -1;
        return 0;
    }
    if (PyDict_CheckExact(v)) {
        if (PyDict_GET_SIZE(sub) == 0)
            return 0;
        if (Py_EnterRecursiveCall(" while reading a document's fields"))
            return -1;
        int rc = walk_dict(v, sub, out);
        Py_LeaveRecursiveCall();
        return rc;
    }
    if (PyList_CheckExact(v)) {
        if (Py_EnterRecursiveCall(" while reading a document's fields"))
            return -1;
        int rc = 0;
        /* Items are read by index each time: the list is the caller's and is not changed. */
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
            PyObject *item = PyList_GET_ITEM(v, i);
            if (item == Py_None)
                continue;
            Py_INCREF(item);
            rc = walk_value(item, node, out);
            Py_DECREF(item);
            if (rc < 0)
                break;
        }
        Py_LeaveRecursiveCall();
        return rc;
    }
    if (v != Py_None && fid >= 0) {
        PyObject *pair = PyTuple_Pack(2, out->row, v);
        if (pair == NULL)
            return -1;
        int rc = append(out->odd, fid, pair);
        Py_DECREF(pair);
        return rc;
    }
    return 0;
}

static int walk_dict(PyObject *obj, PyObject *children, Out *out)
{
    Py_ssize_t pos = 0;
    PyObject *key, *v;
    while (PyDict_Next(obj, &pos, &key, &v)) {
        PyObject *node = PyDict_GetItemWithError(children, key);
        if (node == NULL) {
            if (PyErr_Occurred())
                return -1;
            if (!PyUnicode_Check(key))
                continue;
            Py_ssize_t dot = PyUnicode_FindChar(key, '.', 0, PyUnicode_GET_LENGTH(key), 1);
            if (dot == -2)
                return -1;
            if (dot < 0)
                continue;
            node = lookup_dotted(key, children);
            if (node == NULL) {
                if (PyErr_Occurred())
                    return -1;
                continue;
            }
        }
        Py_INCREF(v);
        Py_INCREF(node);
        int rc = walk_value(v, node, out);
        Py_DECREF(node);
        Py_DECREF(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static PyObject *new_lists(Py_ssize_t n)
{
    PyObject *lists = PyList_New(n);
    if (lists == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *l = PyList_New(0);
        if (l == NULL) {
            Py_DECREF(lists);
            return NULL;
        }
        PyList_SET_ITEM(lists, i, l);
    }
    return lists;
}

/* walk(docs, trie, fields) -> (values, rows, odd): a list per field each. */
static PyObject *walk(PyObject *self, PyObject *args)
{
    PyObject *docs, *trie;
    Py_ssize_t fields;
    if (!PyArg_ParseTuple(args, "O!O!n", &PyList_Type, &docs, &PyDict_Type, &trie, &fields))
        return NULL;
    Out out = {new_lists(fields), new_lists(fields), new_lists(fields), NULL};
    if (out.values == NULL || out.rows == NULL || out.odd == NULL)
        goto fail;
    for (Py_ssize_t row = 0; row < PyList_GET_SIZE(docs); row++) {
        PyObject *doc = PyList_GET_ITEM(docs, row);
        if (!PyDict_CheckExact(doc))
            continue;
        out.row = PyLong_FromSsize_t(row);
        if (out.row == NULL)
            goto fail;
        Py_INCREF(doc);
        int rc = walk_dict(doc, trie, &out);
        Py_DECREF(doc);
        Py_CLEAR(out.row);
        if (rc < 0)
            goto fail;
    }
    return Py_BuildValue("(NNN)", out.values, out.rows, out.odd);
fail:
    Py_XDECREF(out.values);
    Py_XDECREF(out.rows);
    Py_XDECREF(out.odd);
    return NULL;
}

/* encode(values) -> (distinct, codes): the distinct strings of a list in order of first
 * appearance, and per value its place among them, as native int32 bytes (a column's
 * dictionary encoding, done by vigil.engine.batches.Column in Python when this is absent). */
static PyObject *encode(PyObject *self, PyObject *arg)
{
    if (!PyList_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "encode() takes a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(arg);
    if (n > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "too many values for one column");
        return NULL;
    }
    PyObject *index = PyDict_New();
    PyObject *distinct = PyList_New(0);
    PyObject *codes = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int32_t));
    if (index == NULL || distinct == NULL || codes == NULL)
        goto fail;
    int32_t *out = (int32_t *)PyBytes_AS_STRING(codes);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(arg, i);
        PyObject *code = PyDict_GetItemWithError(index, v);
        if (code == NULL) {
            if (PyErr_Occurred())
                goto fail;
            code = PyLong_FromSsize_t(PyList_GET_SIZE(distinct));
            if (code == NULL)
                goto fail;
            int rc = PyDict_SetItem(index, v, code);
            Py_DECREF(code); /* the dict holds it */
            if (rc < 0 || PyList_Append(distinct, v) < 0)
                goto fail;
        }
        out[i] = (int32_t)PyLong_AsLong(code);
    }
    Py_DECREF(index);
    return Py_BuildValue("(NN)", distinct, codes);
fail:
    Py_XDECREF(index);
    Py_XDECREF(distinct);
    Py_XDECREF(codes);
    return NULL;
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS, "walk(docs, trie, fields) -> (values, rows, odd), a list per field each."},
    {"encode", encode, METH_O, "encode(values) -> (distinct, codes): a list's dictionary encoding, codes as int32 bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_batchwalk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__batchwalk(void) { return PyModule_Create(&module); }
