package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// logWriter serialises Writes, so log lines from the handler and the access log
// never interleave, whatever the writer.
//
// With a buffer (log.access_buffer_bytes), access lines, written through
// accessLines, are gathered and written out in one write(2) when the next would
// not fit, every flush interval, before any other log line, and at Close: nginx's
// `access_log … buffer= flush=`. Under load that is one system call per few
// hundred requests instead of one per request. Other lines (start-up, warnings,
// errors) still go out at once, after the access lines before them, so the order
// of the log is kept. Each write carries whole lines: a reader of the pipe never
// sees half of one.
type logWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf *bufio.Writer // nil: access lines go straight to w too

	stop chan struct{}
	done chan struct{}
}

// newLogWriter returns a logWriter on w; size 0 means no buffer, otherwise access
// lines wait at most flush.
func newLogWriter(w io.Writer, size int, flush time.Duration) *logWriter {
	l := &logWriter{w: w}
	if size <= 0 {
		return l
	}
	l.buf = bufio.NewWriterSize(w, size)
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.flushEvery(flush)
	return l
}

// Write writes p, a log line, at once, after the access lines waiting before it.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf != nil && l.buf.Buffered() > 0 {
		if err := l.buf.Flush(); err != nil {
			return 0, err
		}
	}
	return l.w.Write(p)
}

// accessLines is the writer for access lines: buffered when l has a buffer.
func (l *logWriter) accessLines() io.Writer { return accessLineWriter{l} }

type accessLineWriter struct{ l *logWriter }

func (a accessLineWriter) Write(p []byte) (int, error) {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf == nil {
		return l.w.Write(p)
	}
	if len(p) > l.buf.Available() && l.buf.Buffered() > 0 {
		// Out with what is there first, so no line is split across two writes.
		if err := l.buf.Flush(); err != nil {
			return 0, err
		}
	}
	// A line longer than the whole buffer goes straight through (bufio does so
	// when the buffer is empty).
	return l.buf.Write(p)
}

func (l *logWriter) flushEvery(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			_ = l.buf.Flush()
			l.mu.Unlock()
		}
	}
}

// Close stops the flusher and writes out the access lines still buffered. The
// writer stays usable, unbuffered, for whatever logs after it.
func (l *logWriter) Close() error {
	if l.stop == nil {
		return nil
	}
	close(l.stop)
	<-l.done
	l.stop = nil
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.buf.Flush()
	l.buf = nil
	return err
}
