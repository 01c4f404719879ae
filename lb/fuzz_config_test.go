package lb

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParseConfig feeds arbitrary bytes to the parser: it must never panic,
// and whatever it accepts must be a config the server can be built from
// (validation is the only gate before serving).
func FuzzParseConfig(f *testing.F) {
	example, err := os.ReadFile("example.yaml")
	require.NoError(f, err)
	f.Add(example)
	f.Add([]byte(validBase))
	f.Add([]byte("listeners: [{address: ':1', max_header_bytes: 1KiB}]\npools: [{name: a, upstreams: ['h:1'], policy: consistent_hash, hash_header: X}]\nroutes: [{pool: a, rate_limit: {key: ip, rate: 0.5, burst: 1}}]"))
	f.Add([]byte("{}"))
	f.Add([]byte("listeners: [{address: ':1', read_header_timeout: -1s}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			require.Nil(t, cfg)
			return
		}
		require.NoError(t, cfg.Validate(), "accepted config must stay valid")
		pools := map[string]bool{}
		for _, p := range cfg.Pools {
			pools[p.Name] = true
			require.NotEmpty(t, p.Upstreams)
			_, err := newPicker(p, nil)
			require.NoError(t, err)
		}
		for _, r := range cfg.Routes {
			require.True(t, pools[r.Pool])
			require.NotNil(t, r.Retries)
			newRouteMatcher(r.Match) // must not panic
		}
	})
}
