/* meterhub._speedups: the C twin of meterhub._definition.timercore (optional).
 *
 * `with latency.time():` around every request is the one hot path whose cost is the
 * interpreter itself: a Python __enter__/__exit__ pair is two frames, and no Python
 * spelling of a timer gets under ~0.31x prometheus_client's (measured; see
 * timercore.py). These two types are the timer's state and its entry/exit in C; the
 * Python classes in scope.py subclass them for everything else (decorating, async with,
 * .duration, labels()).
 *
 * Contract, the same as the pure-Python PyTimerCore/PyHistogramTimerCore (tests hold the
 * two to it side by side):
 *  - _series, _duration, _t0 behave as __slots__: unset, they raise AttributeError;
 *  - __enter__ stores time.perf_counter()'s reading (the same clock, read without a call);
 *  - HistogramTimerCore.__exit__ stores the duration d in _duration and does what
 *    HistogramChild.observe(d) does for a float: i = bisect_left(series._bounds, d);
 *    v = series._v; v[0] += d; v[i + 1] += 1.0, with no Python code run between reading
 *    _v and the two writes (a thread switch cannot split them, as in Python), for a list of
 *    floats or a writable memoryview of doubles (the two cells meterhub's stores hand out),
 *    and through the generic item protocol for any other sequence.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

static PyObject *str_bounds; /* "_bounds" */
static PyObject *str_v;      /* "_v" */

/* time.perf_counter() without the call: the same clock and the same conversion. */
static int
perf_counter(double *out)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t;
    if (PyTime_PerfCounter(&t) < 0) {
        return -1;
    }
    *out = PyTime_AsSecondsDouble(t);
#else
    _PyTime_t t;
    if (_PyTime_GetPerfCounterWithInfo(&t, NULL) < 0) {
        return -1;
    }
    *out = _PyTime_AsSecondsDouble(t);
#endif
    return 0;
}

/* ------------------------------------------------------------------------ TimerCore */

typedef struct {
    PyObject_HEAD
    PyObject *series;   /* _series */
    PyObject *duration; /* _duration */
    double t0;          /* _t0, when has_t0 */
    int has_t0;
} TimerCoreObject;

static int
timer_traverse(TimerCoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->series);
    Py_VISIT(self->duration);
    return 0;
}

static int
timer_clear(TimerCoreObject *self)
{
    Py_CLEAR(self->series);
    Py_CLEAR(self->duration);
    return 0;
}

static void
timer_dealloc(TimerCoreObject *self)
{
    PyObject_GC_UnTrack(self);
    timer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
timer_get_t0(TimerCoreObject *self, void *Py_UNUSED(closure))
{
    if (!self->has_t0) {
        PyErr_SetString(PyExc_AttributeError, "_t0");
        return NULL;
    }
    return PyFloat_FromDouble(self->t0);
}

static int
timer_set_t0(TimerCoreObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        if (!self->has_t0) {
            PyErr_SetString(PyExc_AttributeError, "_t0");
            return -1;
        }
        self->has_t0 = 0;
        return 0;
    }
    double t0 = PyFloat_AsDouble(value);
    if (t0 == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    self->t0 = t0;
    self->has_t0 = 1;
    return 0;
}

static PyObject *
timer_enter(TimerCoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (perf_counter(&self->t0) < 0) {
        return NULL;
    }
    self->has_t0 = 1;
    return Py_NewRef(self);
}

static PyMethodDef timer_methods[] = {
    {"__enter__", (PyCFunction)timer_enter, METH_NOARGS,
     "Start the clock (time.perf_counter()) and return the timer."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef timer_members[] = {
    {"_series", T_OBJECT_EX, offsetof(TimerCoreObject, series), 0, "The series timed."},
    {"_duration", T_OBJECT_EX, offsetof(TimerCoreObject, duration), 0,
     "The last block's duration in seconds."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef timer_getset[] = {
    {"_t0", (getter)timer_get_t0, (setter)timer_set_t0, "The clock at entry.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TimerCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "meterhub._speedups.TimerCore",
    .tp_doc = "A timer's state (_series, _duration, _t0) and its entry, in C.",
    .tp_basicsize = sizeof(TimerCoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)timer_dealloc,
    .tp_traverse = (traverseproc)timer_traverse,
    .tp_clear = (inquiry)timer_clear,
    .tp_methods = timer_methods,
    .tp_members = timer_members,
    .tp_getset = timer_getset,
};

/* --------------------------------------------------------------- HistogramTimerCore */

/* bisect.bisect_left(bounds, d): a binary search over a tuple of floats, or bisect's own
 * protocol (len, items, <) for anything else. -1 on error. */
static Py_ssize_t
bisect_left(PyObject *bounds, double d, PyObject *dobj)
{
    int is_tuple = PyTuple_CheckExact(bounds);
    Py_ssize_t lo = 0;
    Py_ssize_t hi = is_tuple ? PyTuple_GET_SIZE(bounds) : PySequence_Size(bounds);
    if (hi < 0) {
        return -1;
    }
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        PyObject *item = is_tuple ? Py_NewRef(PyTuple_GET_ITEM(bounds, mid))
                                  : PySequence_GetItem(bounds, mid);
        if (item == NULL) {
            return -1;
        }
        /* An exact float compares as float.__lt__ would; anything else as Python does. */
        int lt = PyFloat_CheckExact(item) ? PyFloat_AS_DOUBLE(item) < d
                                          : PyObject_RichCompareBool(item, dobj, Py_LT);
        Py_DECREF(item);
        if (lt < 0) {
            return -1;
        }
        if (lt) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo;
}

/* v[i] += amount through the item protocol, for a cell of another kind. */
static int
add_item(PyObject *v, Py_ssize_t i, PyObject *amount)
{
    PyObject *index = PyLong_FromSsize_t(i);
    if (index == NULL) {
        return -1;
    }
    PyObject *old = PyObject_GetItem(v, index);
    PyObject *sum = old == NULL ? NULL : PyNumber_InPlaceAdd(old, amount);
    int rc = sum == NULL ? -1 : PyObject_SetItem(v, index, sum);
    Py_XDECREF(sum);
    Py_XDECREF(old);
    Py_DECREF(index);
    return rc;
}

/* The cell update: v[0] += d; v[i + 1] += 1.0. */
static int
add_observation(PyObject *v, Py_ssize_t i, double d, PyObject *dobj)
{
    if (PyList_CheckExact(v)) {
        if (i + 1 >= PyList_GET_SIZE(v)) {
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            return -1;
        }
        PyObject *sum = PyList_GET_ITEM(v, 0), *count = PyList_GET_ITEM(v, i + 1);
        if (PyFloat_CheckExact(sum) && PyFloat_CheckExact(count)) {
            PyObject *new_sum = PyFloat_FromDouble(PyFloat_AS_DOUBLE(sum) + d);
            if (new_sum == NULL) {
                return -1;
            }
            PyObject *new_count = PyFloat_FromDouble(PyFloat_AS_DOUBLE(count) + 1.0);
            if (new_count == NULL) {
                Py_DECREF(new_sum);
                return -1;
            }
            /* A float's dealloc runs no Python code: no switch between the two writes. */
            PyList_SET_ITEM(v, 0, new_sum);
            PyList_SET_ITEM(v, i + 1, new_count);
            Py_DECREF(sum);
            Py_DECREF(count);
            return 0;
        }
    }
    else if (PyMemoryView_Check(v)) {
        Py_buffer view;
        /* Fails as the Python indexing would on a released view (ValueError); a
         * read-only one takes the item protocol below, for its TypeError. */
        if (PyObject_GetBuffer(v, &view, PyBUF_FORMAT | PyBUF_ND) < 0) {
            return -1;
        }
        if (!view.readonly && view.ndim == 1 && view.itemsize == (Py_ssize_t)sizeof(double) &&
            view.format != NULL && strcmp(view.format, "d") == 0 &&
            PyBuffer_IsContiguous(&view, 'C')) {
            double *cells = (double *)view.buf;
            if (i + 1 >= view.shape[0]) {
                PyBuffer_Release(&view);
                PyErr_SetString(PyExc_IndexError, "index out of bounds on dimension 1");
                return -1;
            }
            cells[0] += d;
            cells[i + 1] += 1.0;
            PyBuffer_Release(&view);
            return 0;
        }
        PyBuffer_Release(&view);
    }
    PyObject *one = PyFloat_FromDouble(1.0);
    if (one == NULL) {
        return -1;
    }
    int rc = add_item(v, 0, dobj) < 0 ? -1 : add_item(v, i + 1, one);
    Py_DECREF(one);
    return rc;
}

static PyObject *
histogram_timer_exit(TimerCoreObject *self, PyObject *const *Py_UNUSED(args), Py_ssize_t nargs)
{
    double now;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "__exit__() takes 3 arguments (exc_type, exc, tb), %zd given", nargs);
        return NULL;
    }
    if (!self->has_t0) {
        PyErr_SetString(PyExc_AttributeError, "_t0");
        return NULL;
    }
    if (perf_counter(&now) < 0) {
        return NULL;
    }
    double d = now - self->t0;
    PyObject *dobj = PyFloat_FromDouble(d);
    if (dobj == NULL) {
        return NULL;
    }
    Py_XSETREF(self->duration, Py_NewRef(dobj));
    PyObject *series = self->series;
    if (series == NULL) {
        Py_DECREF(dobj);
        PyErr_SetString(PyExc_AttributeError, "_series");
        return NULL;
    }
    Py_INCREF(series); /* the lookups below may run Python code that clears it */
    Py_ssize_t i = -1;
    PyObject *v = NULL;
    PyObject *bounds = PyObject_GetAttr(series, str_bounds);
    if (bounds != NULL) {
        i = bisect_left(bounds, d, dobj);
        Py_DECREF(bounds);
    }
    if (i >= 0) {
        v = PyObject_GetAttr(series, str_v); /* read now, as the series would */
    }
    int rc = v == NULL ? -1 : add_observation(v, i, d, dobj);
    Py_XDECREF(v);
    Py_DECREF(series);
    Py_DECREF(dobj);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef histogram_timer_methods[] = {
    {"__exit__", (PyCFunction)(void (*)(void))histogram_timer_exit, METH_FASTCALL,
     "Stop the clock and observe the duration in the series' classic buckets."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HistogramTimerCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "meterhub._speedups.HistogramTimerCore",
    .tp_doc = "TimerCore whose exit is a classic histogram series' observe, in C.",
    .tp_basicsize = sizeof(TimerCoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_base = &TimerCoreType,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)timer_dealloc,
    .tp_traverse = (traverseproc)timer_traverse,
    .tp_clear = (inquiry)timer_clear,
    .tp_methods = histogram_timer_methods,
};

/* ------------------------------------------------------------------------- module */

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "meterhub._speedups",
    .m_doc = "Optional C twins of meterhub._definition.timercore's timer cores.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (str_bounds == NULL && (str_bounds = PyUnicode_InternFromString("_bounds")) == NULL) {
        return NULL;
    }
    if (str_v == NULL && (str_v = PyUnicode_InternFromString("_v")) == NULL) {
        return NULL;
    }
    if (PyType_Ready(&TimerCoreType) < 0 || PyType_Ready(&HistogramTimerCoreType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "TimerCore", (PyObject *)&TimerCoreType) < 0 ||
        PyModule_AddObjectRef(module, "HistogramTimerCore",
                              (PyObject *)&HistogramTimerCoreType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
