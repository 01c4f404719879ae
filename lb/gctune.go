package lb

import (
	"os"
	"runtime/debug"
)

// ballast is live heap that is never touched: see TuneStandaloneGC.
var ballast []byte

// ballastSize is the heap floor TuneStandaloneGC sets up.
const ballastSize = 16 << 20

// TuneStandaloneGC sets the garbage collector for a process that runs the
// lb alone (`vigil lb`; not `vigil all`, whose heap the face pipeline
// shares), unless the operator set GOGC:
//
//   - GOGC 400: the lb's live heap is small (buffers and connections) and
//     its garbage per-request; at the default 100 it collected so often
//     that GC cost ~10 % of its CPU per request.
//   - a heap floor: a 16 MiB ballast, live but never touched, so never
//     resident nor scanned. It raises the collection goal from 5 times
//     the live heap (~3 MiB proxy-bound: a collection every 0.5 s at 80k
//     requests/s) to 5 times the live heap plus 16 MiB (one every ~3 s).
//     Each collection on the lb's one P held the requests in flight for
//     about a millisecond; without them, the proxy-bound p99 fell from
//     1.5-5.7 ms to 1.2-1.4 ms (GOGC=off, bench/lb/RESULTS.md, "GC and
//     the tail"). A large live heap (many connections) is collected at
//     GOGC 400 as before: the floor adds a constant.
//
// The heap may hold up to ~80 MiB of garbage more under load, returned to
// the system after the next collection.
func TuneStandaloneGC() {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(400)
	ballast = make([]byte, ballastSize)
}
