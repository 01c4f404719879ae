package lb

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// hdrFrames encodes header blocks, each as HEADERS plus CONTINUATIONs of
// at most frag bytes, with one encoder (so later blocks use its dynamic
// table, as a real client's do).
func hdrFrames(t testing.TB, frag int, blocks ...[]string) *http2.Framer {
	var out, hb bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	enc := hpack.NewEncoder(&hb)
	for i, kv := range blocks {
		hb.Reset()
		for j := 0; j+1 < len(kv); j += 2 {
			require.NoError(t, enc.WriteField(hpack.HeaderField{Name: kv[j], Value: kv[j+1]}))
		}
		b := hb.Bytes()
		first := b[:min(len(b), frag)]
		b = b[len(first):]
		id := uint32(2*i + 1)
		require.NoError(t, fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: true, EndHeaders: len(b) == 0}))
		for len(b) > 0 {
			n := min(len(b), frag)
			require.NoError(t, fr.WriteContinuation(id, n == len(b), b[:n]))
			b = b[n:]
		}
	}
	return http2.NewFramer(nil, &out)
}

// TestH2HdrReader: the relay's own header-block decoding checks what the
// Framer's ReadMetaHeaders checked (field names and values, pseudo-header
// order, kind and duplicates, the list size) and, once the encoder's
// dynamic table holds a call's fields, decodes a block without allocating.
func TestH2HdrReader(t *testing.T) {
	req := []string{":method", "POST", ":scheme", "http", ":path", "/s/M", ":authority", "lb", "content-type", "application/grpc", "te", "trailers", "x-custom", "v"}
	read := func(max uint32, frag int, blocks ...[]string) []error {
		fr := hdrFrames(t, frag, blocks...)
		var hr h2hdrReader
		hr.init(max)
		var errs []error
		for range blocks {
			f, err := fr.ReadFrame()
			require.NoError(t, err)
			h, err := hr.read(fr, f.(*http2.HeadersFrame))
			if err == nil && h.Truncated {
				err = errPseudoHeader // stands for "truncated" below
			}
			errs = append(errs, err)
		}
		return errs
	}
	streamErr := func(err error) bool { _, ok := err.(http2.StreamError); return ok }

	// Across CONTINUATIONs, fields intact.
	fr := hdrFrames(t, 7, req)
	var hr h2hdrReader
	hr.init(0)
	f, err := fr.ReadFrame()
	require.NoError(t, err)
	h, err := hr.read(fr, f.(*http2.HeadersFrame))
	require.NoError(t, err)
	require.Equal(t, uint32(1), h.StreamID)
	require.True(t, h.StreamEnded())
	require.Equal(t, "/s/M", h.PseudoValue("path"))
	require.Equal(t, "v", fieldValue(h.Fields, "x-custom"))
	require.Len(t, h.Fields, len(req)/2)

	for name, block := range map[string][]string{
		"upper-case name":     {":method", "POST", "X-Up", "v"},
		"pseudo after field":  {"a", "b", ":method", "POST"},
		"unknown pseudo":      {":method", "POST", ":bogus", "x"},
		"duplicate pseudo":    {":method", "POST", ":method", "GET"},
		"request and status":  {":method", "POST", ":status", "200"},
		"value with newline":  {":method", "POST", "a", "b\nc"},
		"empty name":          {":method", "POST", "", "x"},
		"name with space":     {":method", "POST", "a b", "x"},
		"value with NUL byte": {":method", "POST", "a", "b\x00"},
	} {
		errs := read(0, 16384, block, req)
		require.True(t, streamErr(errs[0]), "%s: %v", name, errs[0])
		require.NoError(t, errs[1], "%s: the next block is still decoded", name)
	}
	// Past the list size: truncated, then a CONTINUATION is one too many.
	errs := read(60, 16384, req)
	require.ErrorIs(t, errs[0], errPseudoHeader, "truncated")
	errs = read(60, 20, req)
	require.Equal(t, http2.ConnectionError(http2.ErrCodeProtocol), errs[0])

	// No allocations per block once the dynamic table has the fields
	// (the Framer's HEADERS frame itself aside).
	blocks := make([][]string, 200)
	for i := range blocks {
		blocks[i] = req
	}
	fr = hdrFrames(t, 16384, blocks...)
	hr = h2hdrReader{}
	hr.init(0)
	next := func() {
		f, err := fr.ReadFrame()
		require.NoError(t, err)
		_, err = hr.read(fr, f.(*http2.HeadersFrame))
		require.NoError(t, err)
	}
	next()
	allocs := testing.AllocsPerRun(100, next)
	require.LessOrEqual(t, allocs, 1.0, "allocations per header block")
}

// TestH2FieldEncoding: what writeFieldLocked writes (static indexes,
// never-indexed literals, the encoder for the rest) decodes to the same
// fields with a standard decoder over many blocks, also across a change
// of the peer's table size, and sensitive fields stay out of the
// dynamic table.
func TestH2FieldEncoding(t *testing.T) {
	c := newH2Conn(nil, true, testLogger())
	dec := hpack.NewDecoder(4096, nil)
	long := string(bytes.Repeat([]byte("v"), 300))
	block := []hpack.HeaderField{
		{Name: ":status", Value: "200"}, {Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: "/"}, {Name: ":status", Value: "503"}, {Name: "content-type", Value: "application/grpc"},
		{Name: "x-request-id", Value: "0123456789abcdef0123456789abcdef", Sensitive: true},
		{Name: "x-long", Value: long}, {Name: "x-secret", Value: long, Sensitive: true}, {Name: "x-raw", Value: "\x01\x02~"},
	}
	for i := 0; i < 20; i++ {
		if i == 10 {
			// As onSettings does for SETTINGS_HEADER_TABLE_SIZE.
			c.enc.SetMaxDynamicTableSizeLimit(256)
			c.encResized = true
			dec.SetAllowedMaxDynamicTableSize(256)
		}
		c.encBuf.Reset()
		for _, hf := range block {
			c.writeFieldLocked(hf)
		}
		got, err := dec.DecodeFull(c.encBuf.Bytes())
		require.NoError(t, err, "block %d", i)
		require.Equal(t, block, got, "block %d", i)
	}
	require.Less(t, c.encBuf.Len(), 700, "later blocks use the dynamic table")
	require.Equal(t, []byte{0x88}, func() []byte {
		c.encBuf.Reset()
		c.writeFieldLocked(hpack.HeaderField{Name: ":status", Value: "200"})
		return c.encBuf.Bytes()
	}(), ":status 200 is static index 8")
}
