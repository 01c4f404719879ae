package vision

import "sync"

// Model inputs are large (a detector input is 4.9 MB) and short-lived: one
// Run. Reusing them saves the allocation, the zeroing and the GC work,
// which otherwise cost as much as the preprocessing itself.
var buffers sync.Map // size -> *sync.Pool of *[]float32

func getBuffer(n int) []float32 {
	p, _ := buffers.LoadOrStore(n, &sync.Pool{New: func() any { b := make([]float32, n); return &b }})
	return *(p.(*sync.Pool).Get().(*[]float32))
}

// putBuffer returns a buffer once no Run uses it any more.
func putBuffer(b []float32) {
	if p, ok := buffers.Load(cap(b)); ok {
		b = b[:cap(b)]
		p.(*sync.Pool).Put(&b)
	}
}
