package proxy

import (
	"net/http/httputil"
	"sync"
)

// copyBufferSize matches ReverseProxy's own buffer size.
const copyBufferSize = 32 << 10

// bufferPool recycles ReverseProxy's copy buffers, which it would otherwise allocate
// (32 KiB) for every response.
type bufferPool struct{ pool sync.Pool }

var _ httputil.BufferPool = (*bufferPool)(nil)

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

// The pool holds array pointers: a slice converts to one and back without
// allocating, where storing a *[]byte would allocate a slice header on every Put.
func (b *bufferPool) Get() []byte { return b.pool.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < copyBufferSize {
		return
	}
	b.pool.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
}
