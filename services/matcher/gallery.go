package matcher

import (
	"fmt"
	"slices"
)

// Template is one stored face template. Vector is L2-normalised float32.
type Template struct {
	ID       string
	PersonID string
	ModelID  string
	Vector   []float32
}

// gallery holds the templates of one workspace made by one model. Its rows live in
// partitions: one partition for an exact-only gallery, one per IVF list once the
// gallery has an IVF index (the exact scan simply reads every partition). Callers
// hold the workspace lock: read for searches, write for changes.
type gallery struct {
	model string
	dim   int

	parts     []*partition
	centroids []float32 // nlist*dim, IVF list centres; nil while exact-only
	centCodes []int8    // int8 codes of the centroids for fast assignment
	centSteps []float32
	builtAt   int // size when the IVF was last built

	persons   []person         // by ordinal
	personOrd map[string]int32 // person id -> ordinal
	freeOrds  []int32

	templates map[string]slotRef // template id -> where its row is
	size      int
}

// partition is a set of rows stored column by column (structure of arrays).
type partition struct {
	hi    []int8 // n*dim scan codes
	lo    []int8 // n*dim residuals
	units []float32
	owner []int32 // person ordinal
	ids   []string
}

type slotRef struct{ part, row int32 }

type person struct {
	id     string
	groups []string
	rows   int32 // templates of this person in this gallery
}

func newGallery(model string, dim int) *gallery {
	return &gallery{
		model:     model,
		dim:       dim,
		parts:     []*partition{{}},
		personOrd: map[string]int32{},
		templates: map[string]slotRef{},
	}
}

func (p *partition) len() int { return len(p.units) }

func (g *gallery) personOrdinal(id string, groups []string) int32 {
	if o, ok := g.personOrd[id]; ok {
		return o
	}
	var o int32
	if n := len(g.freeOrds); n > 0 {
		o = g.freeOrds[n-1]
		g.freeOrds = g.freeOrds[:n-1]
		g.persons[o] = person{id: id, groups: groups}
	} else {
		o = int32(len(g.persons))
		g.persons = append(g.persons, person{id: id, groups: groups})
	}
	g.personOrd[id] = o
	return o
}

// add inserts or replaces a template; vec must already be normalised to g.dim.
func (g *gallery) add(id, personID string, vec []float32, groups []string) {
	if _, ok := g.templates[id]; ok {
		g.remove(id)
	}
	o := g.personOrdinal(personID, groups)
	g.persons[o].rows++
	pi := 0
	if g.centroids != nil {
		pi = g.nearestList(vec)
	}
	p := g.parts[pi]
	row := p.len()
	p.hi = slices.Grow(p.hi, g.dim)[:len(p.hi)+g.dim]
	p.lo = slices.Grow(p.lo, g.dim)[:len(p.lo)+g.dim]
	unit := quantizeSplit(vec, p.hi[row*g.dim:], p.lo[row*g.dim:])
	p.units = append(p.units, unit)
	p.owner = append(p.owner, o)
	p.ids = append(p.ids, id)
	g.templates[id] = slotRef{int32(pi), int32(row)}
	g.size++
}

// remove deletes a template by id (swap with the partition's last row); it reports
// whether the template was there.
func (g *gallery) remove(id string) bool {
	ref, ok := g.templates[id]
	if !ok {
		return false
	}
	delete(g.templates, id)
	p := g.parts[ref.part]
	o := p.owner[ref.row]
	last := p.len() - 1
	if int(ref.row) != last {
		r, d := int(ref.row), g.dim
		copy(p.hi[r*d:(r+1)*d], p.hi[last*d:])
		copy(p.lo[r*d:(r+1)*d], p.lo[last*d:])
		p.units[r] = p.units[last]
		p.owner[r] = p.owner[last]
		p.ids[r] = p.ids[last]
		g.templates[p.ids[r]] = ref
	}
	p.hi = p.hi[:last*g.dim]
	p.lo = p.lo[:last*g.dim]
	p.units = p.units[:last]
	p.owner = p.owner[:last]
	p.ids[last] = ""
	p.ids = p.ids[:last]
	g.size--
	g.persons[o].rows--
	if g.persons[o].rows == 0 {
		delete(g.personOrd, g.persons[o].id)
		g.persons[o] = person{}
		g.freeOrds = append(g.freeOrds, o)
	}
	return true
}

// removePersons deletes every template of the persons, in one pass over the rows,
// and returns how many.
func (g *gallery) removePersons(personIDs []string) int {
	ords := map[int32]bool{}
	for _, id := range personIDs {
		if o, ok := g.personOrd[id]; ok {
			ords[o] = true
		}
	}
	if len(ords) == 0 {
		return 0
	}
	var ids []string
	for _, p := range g.parts {
		for r, ow := range p.owner {
			if ords[ow] {
				ids = append(ids, p.ids[r])
			}
		}
	}
	for _, id := range ids {
		g.remove(id)
	}
	return len(ids)
}

func (g *gallery) setGroups(personID string, groups []string) {
	if o, ok := g.personOrd[personID]; ok {
		g.persons[o].groups = groups
	}
}

// allowedPersons returns a bitmap of person ordinals in any of the groups, or nil
// when there is no filter.
func (g *gallery) allowedPersons(groups []string) []uint64 {
	if len(groups) == 0 {
		return nil
	}
	bits := make([]uint64, (len(g.persons)+63)/64)
	for o, p := range g.persons {
		for _, pg := range p.groups {
			if slices.Contains(groups, pg) {
				bits[o>>6] |= 1 << (o & 63)
				break
			}
		}
	}
	return bits
}

// rowVector reconstructs a stored row (used by tests and the IVF build).
func (g *gallery) rowVector(p *partition, r int, dst []float32) {
	d := g.dim
	for i := 0; i < d; i++ {
		dst[i] = float32(int32(p.hi[r*d+i])<<8+int32(p.lo[r*d+i])) * p.units[r]
	}
}

// memoryBytes is the size of the index's own arrays (not the Go maps' overhead,
// which is estimated at 48 bytes per template and person entry).
func (g *gallery) memoryBytes() int64 {
	var b int64
	for _, p := range g.parts {
		b += int64(cap(p.hi) + cap(p.lo) + 4*cap(p.units) + 4*cap(p.owner) + 16*cap(p.ids))
		for _, id := range p.ids {
			b += int64(len(id))
		}
	}
	b += int64(4*len(g.centroids) + len(g.centCodes))
	b += int64(48 * (len(g.templates) + len(g.personOrd)))
	b += int64(40 * len(g.persons))
	return b
}

func (g *gallery) String() string { return fmt.Sprintf("gallery(%s, %d)", g.model, g.size) }
