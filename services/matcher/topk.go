package matcher

// cand is a scan candidate: an approximate score and where the row lives.
type cand struct {
	score     float32
	part, row int32
}

// candHeap is a bounded min-heap: the root is the weakest kept candidate, so the
// scan rejects almost every row with one comparison.
type candHeap struct {
	items []cand
	limit int
	full  bool // it was full at least once: rows were dropped
}

func (h *candHeap) offer(c cand) {
	if len(h.items) < h.limit {
		h.items = append(h.items, c)
		h.up(len(h.items) - 1)
		return
	}
	h.full = true
	if c.score <= h.items[0].score {
		return
	}
	h.items[0] = c
	h.down(0)
}

func (h *candHeap) min() float32 { return h.items[0].score }

func (h *candHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h.items[p].score <= h.items[i].score {
			return
		}
		h.items[p], h.items[i] = h.items[i], h.items[p]
		i = p
	}
}

func (h *candHeap) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.items[r].score < h.items[l].score {
			m = r
		}
		if h.items[i].score <= h.items[m].score {
			return
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}
