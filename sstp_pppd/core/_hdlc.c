/*
 * Optional C accelerator for sstp_pppd.core.hdlc: whole batches per call.
 *
 * PacketDecoder.feed(): pppd's RFC 1662 byte stream -> consecutive SSTP data packets
 * (unescaped, FCS checked and stripped, 4-byte SSTP header prepended) in one bytes
 * object.  encode_packets(): consecutive SSTP data packets as received -> one HDLC
 * byte stream (FCS added, escaped for the ACCM, frames sharing flags).
 *
 * The pure-Python code in hdlc.py is the reference; tests/core/test_hdlc_accel.py
 * checks that both agree byte for byte and in every counter.  Pure compute: no I/O.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FLAG 0x7E
#define ESCAPE 0x7D
#define INIT_FCS 0xFFFF
#define GOOD_FCS 0xF0B8
#define SSTP_VERSION 0x10
#define SSTP_HEADER 4
#define SSTP_MAX_PACKET 4095

/* RFC 1662 FCS-16 tables for slicing-by-8: fcs8[k][b] is the register after byte b
 * followed by k zero bytes, so eight input bytes cost eight independent lookups. */
static uint16_t fcs8[8][256];
#define fcstab fcs8[0]

static void build_fcstab(void)
{
    for (unsigned b = 0; b < 256; b++) {
        unsigned v = b;
        for (int i = 0; i < 8; i++)
            v = (v & 1) ? (v >> 1) ^ 0x8408 : v >> 1;
        fcs8[0][b] = (uint16_t)v;
    }
    for (int k = 1; k < 8; k++)
        for (unsigned b = 0; b < 256; b++)
            fcs8[k][b] = (fcs8[k - 1][b] >> 8) ^ fcs8[0][fcs8[k - 1][b] & 0xFF];
}

static inline uint16_t fcs_update(uint16_t fcs, const unsigned char *p, Py_ssize_t n)
{
    while (n >= 8) {
        unsigned v = fcs ^ (p[0] | (unsigned)p[1] << 8);
        fcs = fcs8[7][v & 0xFF] ^ fcs8[6][v >> 8] ^ fcs8[5][p[2]] ^ fcs8[4][p[3]] ^
              fcs8[3][p[4]] ^ fcs8[2][p[5]] ^ fcs8[1][p[6]] ^ fcs8[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        fcs = (fcs >> 8) ^ fcstab[(fcs ^ *p++) & 0xFF];
    return fcs;
}

/* ----- PacketDecoder ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_ssize_t max_length;  /* escaped bytes a frame may span before it is dropped */
    Py_ssize_t max_payload; /* the largest frame an SSTP data packet carries */
    unsigned char *partial; /* unescaped bytes of the unfinished frame */
    Py_ssize_t plen, pcap;
    Py_ssize_t seglen;      /* escaped bytes of the unfinished frame */
    int esc;                /* the last byte was an unpaired 7D */
    int discarding;         /* an oversized frame is being skipped to its flag */
    uint16_t fcs;           /* FCS over partial */
    unsigned long long bad_fcs, too_short, aborted, oversized, too_big;
} PacketDecoder;

static int PacketDecoder_init(PacketDecoder *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_length", "max_payload", NULL};
    Py_ssize_t max_length = 65536, max_payload = SSTP_MAX_PACKET - SSTP_HEADER;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|nn", kwlist, &max_length, &max_payload))
        return -1;
    if (max_length < 0 || max_payload < 0 || max_payload > SSTP_MAX_PACKET - SSTP_HEADER) {
        PyErr_SetString(PyExc_ValueError, "max_length or max_payload out of range");
        return -1;
    }
    self->max_length = max_length;
    self->max_payload = max_payload;
    self->plen = 0;
    self->seglen = 0;
    self->esc = 0;
    self->discarding = 0;
    self->fcs = INIT_FCS;
    self->bad_fcs = self->too_short = self->aborted = self->oversized = self->too_big = 0;
    return 0;
}

static void PacketDecoder_dealloc(PacketDecoder *self)
{
    PyMem_Free(self->partial);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *PacketDecoder_feed(PacketDecoder *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *in = view.buf;
    const Py_ssize_t n = view.len;
    /* Every emitted packet (ulen + 2 bytes) comes from at least ulen >= 4 input bytes,
     * and the unfinished frame sits in the buffer too: twice the input is ample. */
    const Py_ssize_t cap = 2 * (self->plen + n) + 16;
    PyObject *result = PyBytes_FromStringAndSize(NULL, cap);
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    Py_ssize_t o = 0;                    /* committed packets */
    unsigned char *w = out + SSTP_HEADER; /* the frame being unescaped */
    const Py_ssize_t max_length = self->max_length;
    Py_ssize_t seglen = self->seglen;
    Py_ssize_t ulen = self->plen;
    uint16_t fcs = self->fcs;
    int esc = self->esc;
    int discarding = self->discarding;
    if (ulen > 0)
        memcpy(w, self->partial, (size_t)ulen);
    Py_ssize_t i = 0;
    Py_ssize_t next_flag = -1; /* where the next flag is, once looked up */

    while (i < n) {
        if (discarding) {
            const unsigned char *p = memchr(in + i, FLAG, (size_t)(n - i));
            if (p == NULL) {
                i = n;
                break;
            }
            i = (p - in) + 1;
            discarding = 0;
            seglen = ulen = 0;
            esc = 0;
            fcs = INIT_FCS;
            continue;
        }
        unsigned char c = in[i];
        if (c == FLAG) {
            i++;
            if (seglen == 0) {
                /* consecutive flags: an empty frame, skipped silently */
            } else if (seglen > max_length) {
                self->oversized++;
            } else if (esc) {
                self->aborted++;
            } else if (ulen < 4) {
                self->too_short++;
            } else if (fcs != GOOD_FCS) {
                self->bad_fcs++;
            } else if (ulen - 2 > self->max_payload) {
                self->too_big++;
            } else {
                Py_ssize_t length = SSTP_HEADER + ulen - 2;
                out[o] = SSTP_VERSION;
                out[o + 1] = 0;
                out[o + 2] = (unsigned char)(length >> 8);
                out[o + 3] = (unsigned char)(length & 0xFF);
                o += length;
            }
            seglen = ulen = 0;
            esc = 0;
            fcs = INIT_FCS;
            w = out + o + SSTP_HEADER;
            continue;
        }
        if (esc) {
            esc = 0;
            seglen++;
            if (seglen <= max_length) {
                unsigned char b = c ^ 0x20;
                w[ulen++] = b;
                fcs = (fcs >> 8) ^ fcstab[(fcs ^ b) & 0xFF];
            }
            i++;
            continue;
        }
        if (c == ESCAPE) {
            esc = 1;
            seglen++;
            i++;
            continue;
        }
        /* A run of plain bytes up to the next flag or escape (memchr is vectorised). */
        if (next_flag <= i) {
            const unsigned char *f = memchr(in + i, FLAG, (size_t)(n - i));
            next_flag = f ? f - in : n;
        }
        const unsigned char *e = memchr(in + i, ESCAPE, (size_t)(next_flag - i));
        Py_ssize_t j = e ? e - in : next_flag;
        Py_ssize_t run = j - i;
        seglen += run;
        if (seglen <= max_length) {
            memcpy(w + ulen, in + i, (size_t)run);
            fcs = fcs_update(fcs, in + i, run);
            ulen += run;
        }
        i = j;
    }
    PyBuffer_Release(&view);

    if (!discarding && seglen > max_length) {
        /* The unfinished frame is already too long: count it now, keep nothing. */
        self->oversized++;
        discarding = 1;
        seglen = ulen = 0;
        esc = 0;
        fcs = INIT_FCS;
    }
    if (ulen > self->pcap) {
        unsigned char *grown = PyMem_Realloc(self->partial, (size_t)ulen);
        if (grown == NULL) {
            Py_DECREF(result);
            return PyErr_NoMemory();
        }
        self->partial = grown;
        self->pcap = ulen;
    }
    if (ulen > 0)
        memcpy(self->partial, w, (size_t)ulen);
    self->plen = ulen;
    self->seglen = seglen;
    self->fcs = fcs;
    self->esc = esc;
    self->discarding = discarding;
    if (_PyBytes_Resize(&result, o) < 0)
        return NULL;
    return result;
}

static PyObject *PacketDecoder_get_counter(PacketDecoder *self, void *closure)
{
    unsigned long long *field = (unsigned long long *)((char *)self + (Py_ssize_t)closure);
    return PyLong_FromUnsignedLongLong(*field);
}

static PyObject *PacketDecoder_get_buffered(PacketDecoder *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->discarding ? 0 : self->seglen);
}

#define COUNTER(name, doc)                                                                \
    {#name, (getter)PacketDecoder_get_counter, NULL, doc,                                 \
     (void *)offsetof(PacketDecoder, name)}

static PyGetSetDef PacketDecoder_getset[] = {
    COUNTER(bad_fcs, "frames dropped: the FCS did not check"),
    COUNTER(too_short, "frames dropped: under 4 octets with the FCS"),
    COUNTER(aborted, "frames dropped: ended by 7D 7E"),
    COUNTER(oversized, "frames dropped: more than max_length escaped bytes"),
    COUNTER(too_big, "frames dropped: longer than max_payload"),
    {"buffered", (getter)PacketDecoder_get_buffered, NULL,
     "escaped bytes of the unfinished frame", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef PacketDecoder_methods[] = {
    {"feed", (PyCFunction)PacketDecoder_feed, METH_O,
     "feed(data) -> bytes: the SSTP data packets of the frames completed by data"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PacketDecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sstp_pppd.core._hdlc.PacketDecoder",
    .tp_doc = "HDLC byte stream -> SSTP data packets (see hdlc.PacketDecoder)",
    .tp_basicsize = sizeof(PacketDecoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)PacketDecoder_init,
    .tp_dealloc = (destructor)PacketDecoder_dealloc,
    .tp_methods = PacketDecoder_methods,
    .tp_getset = PacketDecoder_getset,
};

/* ----- encode_packets --------------------------------------------------------------- */

static PyObject *encode_packets(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer view;
    unsigned long accm = 0xFFFFFFFFUL;
    if (!PyArg_ParseTuple(args, "y*|k", &view, &accm))
        return NULL;
    unsigned char escape[256];
    memset(escape, 0, sizeof escape);
    for (int b = 0; b < 32; b++)
        escape[b] = (accm >> b) & 1;
    escape[FLAG] = escape[ESCAPE] = 1;

    const unsigned char *in = view.buf;
    const Py_ssize_t n = view.len;
    /* A packet of L >= 4 bytes becomes at most 2 (L - 4) + 4 + 1 bytes: under 2 L. */
    PyObject *result = PyBytes_FromStringAndSize(NULL, 2 * n + 1);
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    unsigned char *o = out;
    Py_ssize_t pos = 0;
    while (n - pos >= SSTP_HEADER) {
        const unsigned char *p = in + pos;
        Py_ssize_t length = ((Py_ssize_t)(p[2] & 0x0F) << 8) | p[3];
        if (p[0] != SSTP_VERSION || (p[1] & 0x01) || length < SSTP_HEADER || length > n - pos)
            break;
        if (o == out)
            *o++ = FLAG;
        uint16_t fcs = fcs_update(INIT_FCS, p + SSTP_HEADER, length - SSTP_HEADER);
        for (Py_ssize_t k = SSTP_HEADER; k < length; k++) {
            /* Branch-free: which bytes need escaping is data, so a branch would be
             * mispredicted often. Two bytes are stored, the second kept only for an
             * escape; the stray one is overwritten next (the buffer has room). */
            unsigned char c = p[k];
            unsigned char e = escape[c];
            o[0] = e ? ESCAPE : c;
            o[1] = c ^ 0x20;
            o += 1 + e;
        }
        fcs ^= 0xFFFF;
        unsigned char tail[2] = {(unsigned char)(fcs & 0xFF), (unsigned char)(fcs >> 8)};
        for (int k = 0; k < 2; k++) {
            if (escape[tail[k]]) {
                *o++ = ESCAPE;
                *o++ = tail[k] ^ 0x20;
            } else {
                *o++ = tail[k];
            }
        }
        *o++ = FLAG;
        pos += length;
    }
    PyBuffer_Release(&view);
    if (_PyBytes_Resize(&result, o - out) < 0)
        return NULL;
    return Py_BuildValue("(Nn)", result, pos);
}

static PyMethodDef module_methods[] = {
    {"encode_packets", encode_packets, METH_VARARGS,
     "encode_packets(data, accm=0xFFFFFFFF) -> (hdlc, consumed): the leading complete "
     "SSTP data packets of data as one HDLC stream, and how many bytes they took"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_hdlc", "C accelerator for sstp_pppd.core.hdlc", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hdlc(void)
{
    build_fcstab();
    if (PyType_Ready(&PacketDecoderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    Py_INCREF(&PacketDecoderType);
    if (PyModule_AddObject(m, "PacketDecoder", (PyObject *)&PacketDecoderType) < 0) {
        Py_DECREF(&PacketDecoderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
