package cache

import (
	"encoding/binary"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// Entry is one stored answer. It is immutable once stored: many requests write it
// at once, so its header slices are never changed in place (they are clipped, so an
// append copies them).
type Entry struct {
	Status int
	Header http.Header
	Body   []byte

	// Stored is when the answer was fetched; Age counts from it.
	Stored time.Time
	// Fresh is when it stops being fresh; until StaleUntil it may still be served
	// while one caller refreshes it (stale_while_revalidate), and until ErrorUntil
	// when the upstream fails (stale_if_error).
	Fresh, StaleUntil, ErrorUntil time.Time

	// pass marks "this request's answers are not stored" (hit-for-pass): callers go
	// to the upstream at once instead of queueing behind a fill that will not store.
	pass bool

	// lines holds the Age and hit Cache-Status values for one second, so hits in
	// that second share them rather than formatting their own.
	lines atomic.Pointer[hitLines]
}

// hitLines are the header values of a hit in second sec of the entry's life.
type hitLines struct {
	sec         int64
	age, status []string
}

// Pass reports whether e only marks its request as one whose answers are not stored.
func (e *Entry) Pass() bool { return e.pass }

// Age is how long ago the answer was fetched, in whole seconds, as the Age header
// gives it.
func (e *Entry) Age(now time.Time) int64 {
	if d := now.Sub(e.Stored); d > 0 {
		return int64(d / time.Second)
	}
	return 0
}

// HitHeaders returns the Age and Cache-Status values of a fresh hit at now. Hits
// within one second of each other share the same slices: callers must not change
// them.
func (e *Entry) HitHeaders(now time.Time, cacheName string) (age, status []string) {
	sec := e.Age(now)
	if l := e.lines.Load(); l != nil && l.sec == sec {
		return l.age, l.status
	}
	ttl := int64(e.Fresh.Sub(now) / time.Second)
	l := &hitLines{
		sec:    sec,
		age:    []string{strconv.FormatInt(sec, 10)},
		status: []string{cacheName + "; hit; ttl=" + strconv.FormatInt(ttl, 10)},
	}
	e.lines.Store(l)
	return l.age, l.status
}

// size is what e counts against the in-process tier's budget.
func (e *Entry) size() int64 {
	n := int64(len(e.Body)) + 256
	for k, vs := range e.Header {
		n += int64(len(k)) + 16
		for _, v := range vs {
			n += int64(len(v)) + 16
		}
	}
	return n
}

// newEntry builds the entry of an answer fetched at now and fresh for ttl.
func newEntry(status int, h http.Header, body []byte, now time.Time, ttl time.Duration, p Policy) *Entry {
	e := &Entry{Status: status, Header: clipHeader(h), Body: body, Stored: now, Fresh: now.Add(ttl)}
	e.StaleUntil = e.Fresh.Add(p.StaleWhileRevalidate)
	e.ErrorUntil = e.Fresh.Add(p.StaleIfError)
	return e
}

// clipHeader copies h with every value slice clipped to its length.
func clipHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		out[k] = slices.Clip(slices.Clone(vs))
	}
	return out
}

// Redis value layout: a kind byte, then for an entry the status, the time windows
// in milliseconds (ttl, stale_while_revalidate, stale_if_error), the header as a
// count of fields, each a name and its values, and the body. Every string is
// written with its length first.
const (
	kindEntry byte = 'E'
	kindPass  byte = 'P'
)

var errCorrupt = errors.New("cache: stored entry is corrupt")

// encode writes e for Redis.
func encode(e *Entry, ttl time.Duration, p Policy) []byte {
	b := make([]byte, 0, len(e.Body)+512)
	if e.pass {
		return append(b, kindPass)
	}
	b = append(b, kindEntry)
	b = binary.AppendUvarint(b, uint64(e.Status))
	b = binary.AppendUvarint(b, uint64(ttl.Milliseconds()))
	b = binary.AppendUvarint(b, uint64(p.StaleWhileRevalidate.Milliseconds()))
	b = binary.AppendUvarint(b, uint64(p.StaleIfError.Milliseconds()))
	b = binary.AppendUvarint(b, uint64(len(e.Header)))
	for k, vs := range e.Header {
		b = appendField(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendField(b, v)
		}
	}
	return append(b, e.Body...)
}

// decode reads an entry Redis holds. freshLeft is how long it stays fresh (0 or
// less: stale), left how long Redis keeps it at all; the entry's times are set
// from them on now's clock, so instances whose clocks differ agree on its age.
func decode(v []byte, now time.Time, freshLeft, left time.Duration) (*Entry, error) {
	if len(v) == 0 {
		return nil, errCorrupt
	}
	switch v[0] {
	case kindPass:
		return &Entry{pass: true, Stored: now, Fresh: now.Add(freshLeft)}, nil
	case kindEntry:
	default:
		return nil, errCorrupt
	}
	d := decoder{b: v[1:]}
	status := d.uvarint()
	ttl := time.Duration(d.uvarint()) * time.Millisecond
	swr := time.Duration(d.uvarint()) * time.Millisecond
	sie := time.Duration(d.uvarint()) * time.Millisecond
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) || status < 100 || status > 999 {
		return nil, errCorrupt
	}
	h := make(http.Header, n)
	for range n {
		k := d.str()
		c := d.uvarint()
		if d.err != nil || c > uint64(len(d.b)) {
			return nil, errCorrupt
		}
		vs := make([]string, c)
		for i := range vs {
			vs[i] = d.str()
		}
		h[k] = vs
	}
	if d.err != nil {
		return nil, errCorrupt
	}
	p := Policy{StaleWhileRevalidate: swr, StaleIfError: sie}
	// Where the entry is in its life, from what Redis has left of it: fresh for
	// freshLeft more, or stale with left to go of its longest stale window.
	var stored time.Time
	if freshLeft > 0 {
		stored = now.Add(freshLeft - ttl)
	} else {
		stored = now.Add(left - max(swr, sie) - ttl)
	}
	return newEntry(int(status), h, slices.Clip(d.b), stored, ttl, p), nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
