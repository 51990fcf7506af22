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
	return &bufferPool{pool: sync.Pool{New: func() any {
		b := make([]byte, copyBufferSize)
		return &b
	}}}
}

func (b *bufferPool) Get() []byte { return *b.pool.Get().(*[]byte) }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < copyBufferSize {
		return
	}
	buf = buf[:copyBufferSize]
	b.pool.Put(&buf)
}
