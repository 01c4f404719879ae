//go:build race

package lb

// raceEnabled: the race detector is on (go test -race).
const raceEnabled = true
